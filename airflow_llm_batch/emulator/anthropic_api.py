"""HTTP routes of the emulated Anthropic Message Batches API (``/v1/messages/batches``).

The official ``anthropic`` SDK talks to these routes unchanged with
``base_url="http://HOST:PORT"``. Any ``anthropic-version`` header is accepted. ``results_url`` is
absolute and built from the address the client used to reach the emulator.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from aiohttp import web

from .anthropic_batches import AnthropicBatches, AnthropicError, error_type_for
from .faults import RETRY_AFTER_HEADERS
from .query_params import int_param
from .state import EmulatorState, gc_paused
from .wire import json_answer

CREATE_PATH = re.compile(r"^/v1/messages/batches$")
"""``POST`` here creates a batch: the fault plan's lost creates."""

ANTHROPIC_BATCHES_KEY = web.AppKey("anthropic_batches", AnthropicBatches)


def error_body(status: int, message: str) -> dict[str, Any]:
    """Anthropic-shaped error body for errors raised outside the handlers (auth, unknown route)."""
    return {"type": "error", "error": {"type": error_type_for(status), "message": message}}


OVERLOADED_STATUS = 529
_TRANSIENT_MESSAGES = {
    429: "Number of requests has exceeded your rate limit. Please try again later.",
    500: "Internal server error",
    OVERLOADED_STATUS: "Overloaded",
}


def transient_error(status: int) -> web.Response:
    """A transient error as the Anthropic API sends it (fault plan), with a short ``retry-after``.

    503 becomes 529 ``overloaded_error``, the status Anthropic answers when it is overloaded.
    """
    if status == 503:
        status = OVERLOADED_STATUS
    request_id = "req_" + secrets.token_hex(12)
    body = {
        "type": "error",
        "error": {
            "type": error_type_for(status),
            "message": _TRANSIENT_MESSAGES.get(status, "Internal server error"),
        },
        "request_id": request_id,
    }
    headers = {**RETRY_AFTER_HEADERS, "request-id": request_id}
    return json_answer(body, status=status, headers=headers)


def _base_url(request: web.Request) -> str:
    return str(request.url.origin())


class AnthropicRoutes:
    """aiohttp handlers bound to one :class:`AnthropicBatches` store."""

    def __init__(self, store: AnthropicBatches, max_bytes: int) -> None:
        self.store = store
        self.max_bytes = max_bytes

    async def create(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if len(raw) > self.max_bytes:
            raise AnthropicError(413, f"Request exceeds the maximum batch size of {self.max_bytes} bytes.")
        try:
            with gc_paused():
                payload = json.loads(raw)
        except ValueError as exc:
            raise AnthropicError(400, "The request body is not valid JSON.") from exc
        batch = self.store.create_batch(payload)
        return json_answer(batch.to_json(_base_url(request)))

    async def retrieve(self, request: web.Request) -> web.Response:
        batch = self.store.get_batch(request.match_info["batch_id"])
        return json_answer(batch.to_json(_base_url(request)))

    async def list_batches(self, request: web.Request) -> web.Response:
        limit = int_param(
            request.query.get("limit"), 20, lambda: AnthropicError(400, "limit: Input should be a valid integer")
        )
        if not 1 <= limit <= 1000:
            raise AnthropicError(400, "limit: Input should be between 1 and 1000")
        page, has_more = self.store.list_batches(
            request.query.get("after_id"), request.query.get("before_id"), limit
        )
        base = _base_url(request)
        data = [batch.to_json(base) for batch in page]
        return json_answer(
            {
                "data": data,
                "has_more": has_more,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )

    async def cancel(self, request: web.Request) -> web.Response:
        batch = self.store.cancel_batch(request.match_info["batch_id"])
        return json_answer(batch.to_json(_base_url(request)))

    async def delete(self, request: web.Request) -> web.Response:
        batch_id = request.match_info["batch_id"]
        self.store.delete_batch(batch_id)
        return json_answer({"id": batch_id, "type": "message_batch_deleted"})

    async def results(self, request: web.Request) -> web.Response:
        data = self.store.results(request.match_info["batch_id"])
        return web.Response(body=data, content_type="application/x-jsonl")

    def register(self, app: web.Application) -> None:
        prefix = "/v1/messages/batches"
        app.router.add_post(prefix, self.create)
        app.router.add_get(prefix, self.list_batches)
        app.router.add_get(f"{prefix}/{{batch_id}}", self.retrieve)
        app.router.add_delete(f"{prefix}/{{batch_id}}", self.delete)
        app.router.add_post(f"{prefix}/{{batch_id}}/cancel", self.cancel)
        app.router.add_get(f"{prefix}/{{batch_id}}/results", self.results)


def add_routes(app: web.Application, state: EmulatorState) -> AnthropicBatches:
    """Mount the Anthropic Message Batches routes on ``app``."""
    store = AnthropicBatches(state)
    app[ANTHROPIC_BATCHES_KEY] = store
    AnthropicRoutes(store, state.config.anthropic_max_batch_bytes).register(app)
    return store
