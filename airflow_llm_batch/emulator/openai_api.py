"""HTTP routes of the emulated OpenAI Files and Batch APIs (``/v1/files``, ``/v1/batches``).

The official ``openai`` SDK talks to these routes unchanged with
``base_url="http://HOST:PORT/v1"``. The same handlers are also mounted under ``/openai`` so that
an ``AzureOpenAI`` client (``azure_endpoint="http://HOST:PORT"``) works too; its ``api-version``
query parameter is ignored.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any

from aiohttp import BodyPartReader, web

from .faults import RETRY_AFTER_HEADERS
from .openai_answers import error_type_for
from .openai_batches import OpenAIBatches, OpenAIError, StoredFile
from .query_params import int_param
from .state import EmulatorState
from .wire import json_answer, json_object_body

CREATE_PATH = re.compile(r"^/(v1|openai)/batches$")
"""``POST`` here creates a batch (OpenAI ``/v1``, Azure ``/openai``): the fault plan's lost creates."""

FILE_PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})
OPENAI_BATCHES_KEY = web.AppKey("openai_batches", OpenAIBatches)


def error_body(status: int, message: str) -> dict[str, Any]:
    """OpenAI-shaped error body for errors raised outside the handlers (auth, unknown route)."""
    type_ = "invalid_request_error"
    code: str | None = None
    if status == 401:
        code = "invalid_api_key"
    elif status >= 500:
        type_ = "server_error"
    elif status == 429:
        type_ = "rate_limit_error"
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


_TRANSIENT: dict[int, tuple[str, str, str | None]] = {
    429: (
        "Rate limit reached for requests in organization org-emulator on requests per min (RPM). "
        "Please try again in 10ms.",
        "requests",
        "rate_limit_exceeded",
    ),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}


def transient_error(status: int) -> web.Response:
    """A transient error as the OpenAI API sends it (fault plan), with a short ``retry-after``."""
    message, type_, code = _TRANSIENT.get(
        status, ("The server had an error while processing your request.", error_type_for(status), None)
    )
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    headers = {**RETRY_AFTER_HEADERS, "x-request-id": "req_" + secrets.token_hex(16)}
    return json_answer(body, status=status, headers=headers)


async def _json_payload(request: web.Request) -> Mapping[str, Any]:
    return await json_object_body(request, OpenAIError, "We could not parse the JSON body of your request.")


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    def invalid() -> OpenAIError:
        return OpenAIError(400, f"Invalid '{name}': expected an integer.", param=name)

    value = int_param(request.query.get(name), default, invalid)
    if not low <= value <= high:
        raise OpenAIError(400, f"Invalid '{name}': must be between {low} and {high}.", param=name)
    return value


def _list_body(items: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    }


class OpenAIRoutes:
    """aiohttp handlers bound to one :class:`OpenAIBatches` store."""

    def __init__(self, store: OpenAIBatches) -> None:
        self.store = store

    # ---------------------------------------------------------------------------------- files
    async def upload_file(self, request: web.Request) -> web.Response:
        if not request.content_type.startswith("multipart/"):
            raise OpenAIError(400, "File uploads must be sent as multipart/form-data.")
        data: bytes | None = None
        filename = "upload.jsonl"
        purpose: str | None = None
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file":
                data = bytes(await part.read(decode=False))
                filename = part.filename or filename
            elif part.name == "purpose":
                purpose = await part.text()
            else:
                await part.release()
        if data is None:
            raise OpenAIError(
                400, "Missing required parameter: 'file'.", param="file", code="missing_required_parameter"
            )
        if purpose is None:
            raise OpenAIError(
                400,
                "Missing required parameter: 'purpose'.",
                param="purpose",
                code="missing_required_parameter",
            )
        if purpose not in FILE_PURPOSES:
            raise OpenAIError(
                400, f"Invalid value for 'purpose': {purpose!r}.", param="purpose", code="invalid_value"
            )
        stored = self.store.add_file(data, filename, purpose, uploaded=True)
        return json_answer(stored.to_json())

    async def list_files(self, request: web.Request) -> web.Response:
        limit = _int_query(request, "limit", 10_000, 1, 10_000)
        purpose = request.query.get("purpose")
        newest_first = request.query.get("order", "desc") != "asc"
        files: list[StoredFile] = sorted(
            self.store.files.values(), key=lambda f: f.sequence, reverse=newest_first
        )
        if purpose:
            files = [f for f in files if f.purpose == purpose]
        after = request.query.get("after")
        if after:
            position = next((i for i, f in enumerate(files) if f.id == after), None)
            files = files[position + 1 :] if position is not None else []
        page = files[:limit]
        return json_answer(_list_body([f.to_json() for f in page], len(files) > limit))

    async def retrieve_file(self, request: web.Request) -> web.Response:
        return json_answer(self.store.get_file(request.match_info["file_id"]).to_json())

    async def delete_file(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        self.store.delete_file(file_id)
        return json_answer({"id": file_id, "object": "file", "deleted": True})

    async def file_content(self, request: web.Request) -> web.Response:
        stored = self.store.get_file(request.match_info["file_id"])
        return web.Response(body=stored.data, content_type="application/octet-stream")

    # -------------------------------------------------------------------------------- batches
    async def create_batch(self, request: web.Request) -> web.Response:
        batch = self.store.create_batch(await _json_payload(request))
        return json_answer(batch.to_json())

    async def retrieve_batch(self, request: web.Request) -> web.Response:
        return json_answer(self.store.get_batch(request.match_info["batch_id"]).to_json())

    async def list_batches(self, request: web.Request) -> web.Response:
        limit = _int_query(request, "limit", 20, 1, 100)
        page, has_more = self.store.list_batches(request.query.get("after"), limit)
        return json_answer(_list_body([b.to_json() for b in page], has_more))

    async def cancel_batch(self, request: web.Request) -> web.Response:
        return json_answer(self.store.cancel_batch(request.match_info["batch_id"]).to_json())

    def register(self, app: web.Application, prefix: str) -> None:
        app.router.add_post(f"{prefix}/files", self.upload_file)
        app.router.add_get(f"{prefix}/files", self.list_files)
        app.router.add_get(f"{prefix}/files/{{file_id}}", self.retrieve_file)
        app.router.add_delete(f"{prefix}/files/{{file_id}}", self.delete_file)
        app.router.add_get(f"{prefix}/files/{{file_id}}/content", self.file_content)
        app.router.add_post(f"{prefix}/batches", self.create_batch)
        app.router.add_get(f"{prefix}/batches", self.list_batches)
        app.router.add_get(f"{prefix}/batches/{{batch_id}}", self.retrieve_batch)
        app.router.add_post(f"{prefix}/batches/{{batch_id}}/cancel", self.cancel_batch)


def add_routes(app: web.Application, state: EmulatorState) -> OpenAIBatches:
    """Mount the OpenAI routes (``/v1`` and the Azure-style ``/openai``) on ``app``."""
    store = OpenAIBatches(state)
    app[OPENAI_BATCHES_KEY] = store
    if state.config.batch_api:  # else no file or batch route: 404, as on a server without a batch API
        routes = OpenAIRoutes(store)
        routes.register(app, "/v1")
        routes.register(app, "/openai")
    return store
