"""HTTP routes of the emulated Gemini Developer API batch mode: ``batchGenerateContent``, batches
(get, list, cancel, delete) and the Files API (resumable upload, get, list, delete, download).

The official ``google-genai`` SDK (sync and async) talks to these routes unchanged with
``genai.Client(api_key=..., http_options=types.HttpOptions(base_url=emulator.url))``. Every route
is served under ``/v1beta`` (google-genai 2.x) and ``/v1`` (its 3.x default); uploads under
``/upload/{version}/files`` and downloads also under ``/download/{version}/files/...``.

Two wire facts need more than a route table:

* ``/v1/batches`` and ``/v1/files`` are also OpenAI's paths. A request is Gemini's when it carries
  Gemini's marks (``x-goog-api-key``, ``x-goog-api-client``, or a ``key`` query parameter); an
  inner middleware (it runs after the server's gateway: auth, faults and error shapes apply)
  sends those to the Gemini handlers and leaves every other request to the app's router.
* Google sends the API key as ``x-goog-api-key``, and the chunks of a resumable upload carry no
  key at all (the upload URL is the credential). An outer middleware passes the first on as
  ``x-api-key`` and vouches for chunks that name a live upload session, so the gateway's API-key
  check (``EmulatorConfig.api_key``) applies to Gemini clients too.

``POST /_emulator/gemini/quirks`` (body ``{"inline_metadata": false}``) makes inline responses
come back without their ``metadata``, as python-genai#2008 reports of the real service.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from .faults import RETRY_AFTER_HEADERS
from .gemini_batches import MAX_INLINE_BODY_BYTES, GeminiError, GeminiStore, status_name
from .query_params import clamped, int_param
from .state import EmulatorState, gc_paused
from .wire import json_answer

GEMINI_STORE_KEY = web.AppKey("gemini_store", GeminiStore)
VERSIONS = ("v1beta", "v1")
PATH_PREFIXES = ("/v1beta/", "/upload/v1beta/", "/upload/v1/", "/download/v1beta/", "/download/v1/", "/v1/models/")
"""Paths whose errors are Gemini-shaped (``/v1/batches`` and ``/v1/files`` are shared with OpenAI)."""
_NAME = r"[A-Za-z0-9_.\-]+"
CREATE_PATH = re.compile(rf"^/(v1beta|v1)/models/{_NAME}:batchGenerateContent$")
"""``POST`` here creates a batch: the fault plan's lost creates."""
_MARKS = ("x-goog-api-key", "x-goog-api-client")

Handler = Callable[[web.Request, dict[str, str]], Awaitable[web.StreamResponse]]


def error_body(status: int, message: str) -> dict[str, Any]:
    """Google-shaped error body for errors raised outside the handlers (auth, faults, unknown route)."""
    return {"error": {"code": status, "message": message, "status": status_name(status)}}


_TRANSIENT_MESSAGES = {
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry.",
    503: "The model is overloaded. Please try again later.",
}


def transient_error(status: int) -> web.Response:
    """A transient error as Google APIs send it (fault plan), with a short ``retry-after``."""
    body = error_body(status, _TRANSIENT_MESSAGES.get(status, "Internal error encountered."))
    return json_answer(body, status=status, headers=dict(RETRY_AFTER_HEADERS))


def _duration(seconds: float) -> str:
    """A protobuf Duration in JSON: ``"22s"``, ``"0.25s"`` (at most 9 decimals, never an exponent)."""
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"


def quota_exhausted(retry_delay: float) -> web.Response:
    """A 429 as Google APIs answer an exhausted quota: no ``Retry-After`` header; the wait is a
    ``google.rpc.RetryInfo`` among the error's ``details`` (a protobuf Duration such as ``"22s"``)."""
    details = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
            {"quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
             "quotaId": "GenerateRequestsPerMinutePerProjectPerModel"}]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": _duration(retry_delay)},
    ]
    body = error_body(429, "You exceeded your current quota, please check your plan and billing details.")
    body["error"]["details"] = details
    return json_answer(body, status=429)


def _origin(request: web.Request) -> str:
    return str(request.url.origin())


def _int_query(request: web.Request, name: str, default: int, high: int) -> int:
    value = int_param(
        request.query.get(name), default, lambda: GeminiError(400, f"Invalid value at '{name}': expected an integer.")
    )
    return clamped(value, 1, high)


def _page_offset(request: web.Request) -> int:
    token = request.query.get("pageToken") or request.query.get("page_token") or "0"
    if not token.isdigit():
        raise GeminiError(400, "Invalid page token.")
    return int(token)


def _page_response(key: str, items: list[dict[str, Any]], following: int | None) -> web.Response:
    """One page of a list: ``{key: items}``, with ``nextPageToken`` when more follow."""
    body: dict[str, Any] = {key: items}
    if following is not None:
        body["nextPageToken"] = str(following)
    return json_answer(body)


async def _json_body(request: web.Request, limit: int | None = None) -> Any:
    raw = await request.read()
    if limit is not None and len(raw) > limit:
        raise GeminiError(400, f"Request payload size exceeds the limit: {limit} bytes.")
    if not raw.strip():
        return {}
    try:
        with gc_paused():
            return json.loads(raw)
    except ValueError as exc:
        raise GeminiError(400, "Invalid JSON payload received.") from exc


class GeminiRoutes:
    """aiohttp handlers bound to one :class:`GeminiStore`; ``params`` holds the path's parts.

    Example: ``await GeminiRoutes(store).get_batch(request, {"version": "v1beta", "batch": "abc"})``
    """

    def __init__(self, store: GeminiStore) -> None:
        self.store = store

    # -------------------------------------------------------------------------------- batches
    async def create_batch(self, request: web.Request, params: dict[str, str]) -> web.Response:
        payload = await _json_body(request, MAX_INLINE_BODY_BYTES)
        batch = self.store.create_batch(f"models/{params['model']}", payload)
        return json_answer(batch.to_json(params["version"]))

    async def get_batch(self, request: web.Request, params: dict[str, str]) -> web.Response:
        batch = self.store.get_batch(params["batch"])
        return json_answer(batch.to_json(params["version"]))

    async def list_batches(self, request: web.Request, params: dict[str, str]) -> web.Response:
        page, following = self.store.list_batches(_int_query(request, "pageSize", 50, 1000), _page_offset(request))
        return _page_response("operations", [b.to_json(params["version"], with_inline_output=False) for b in page],
                              following)

    async def cancel_batch(self, request: web.Request, params: dict[str, str]) -> web.Response:
        self.store.cancel_batch(params["batch"])
        return json_answer({})

    async def delete_batch(self, request: web.Request, params: dict[str, str]) -> web.Response:
        self.store.delete_batch(params["batch"])
        return json_answer({})

    # ---------------------------------------------------------------------------------- files
    async def upload(self, request: web.Request, params: dict[str, str]) -> web.Response:
        """Resumable upload: ``start`` opens a session, then ``upload[, finalize]`` chunks fill it."""
        command = {c.strip().lower() for c in request.headers.get("X-Goog-Upload-Command", "").split(",")}
        upload_id = request.query.get("upload_id")
        if upload_id is None:
            if "start" not in command or request.headers.get("X-Goog-Upload-Protocol") != "resumable":
                raise GeminiError(400, "Only resumable uploads are supported: send X-Goog-Upload-Protocol: "
                                       "resumable and X-Goog-Upload-Command: start.")
            size = request.headers.get("X-Goog-Upload-Header-Content-Length")
            session = self.store.start_upload(await _json_body(request), int(size) if size else None,
                                              request.headers.get("X-Goog-Upload-Header-Content-Type"))
            url = f"{_origin(request)}/upload/{params['version']}/files?upload_id={session}&upload_protocol=resumable"
            return web.Response(headers={"X-Goog-Upload-URL": url, "X-Goog-Upload-Status": "active",
                                         "X-Goog-Upload-Chunk-Granularity": "262144"})
        if "cancel" in command:
            self.store.uploads.pop(upload_id, None)
            return web.Response(headers={"X-Goog-Upload-Status": "cancelled"})
        if "query" in command:
            session_state = self.store.uploads.get(upload_id)
            received = len(session_state.received) if session_state else 0
            return web.Response(headers={"X-Goog-Upload-Status": "active" if session_state else "final",
                                         "X-Goog-Upload-Size-Received": str(received)})
        offset = request.headers.get("X-Goog-Upload-Offset")
        stored = self.store.upload_chunk(upload_id, int(offset) if offset else None, await request.read(),
                                         "finalize" in command)
        if stored is None:
            return web.Response(headers={"X-Goog-Upload-Status": "active"})
        return json_answer({"file": stored.to_json(_origin(request), params["version"])},
                                 headers={"X-Goog-Upload-Status": "final"})

    async def get_file(self, request: web.Request, params: dict[str, str]) -> web.Response:
        stored = self.store.get_file(params["file"])
        return json_answer(stored.to_json(_origin(request), params["version"]))

    async def list_files(self, request: web.Request, params: dict[str, str]) -> web.Response:
        page, following = self.store.list_files(_int_query(request, "pageSize", 10, 100), _page_offset(request))
        return _page_response("files", [f.to_json(_origin(request), params["version"]) for f in page], following)

    async def delete_file(self, request: web.Request, params: dict[str, str]) -> web.Response:
        self.store.delete_file(params["file"])
        return json_answer({})

    async def download(self, request: web.Request, params: dict[str, str]) -> web.Response:
        if request.query.get("alt") != "media":
            raise GeminiError(400, "Downloads need the query parameter alt=media.")
        return web.Response(body=self.store.download(params["file"]), content_type="application/octet-stream")


@dataclass(frozen=True)
class Route:
    """One Gemini route: method, path regex (named groups become ``params``) and its handler.

    Example: ``Route("GET", re.compile(r"^/(?P<version>v1beta)/batches$"), routes.list_batches)``
    """

    method: str
    pattern: re.Pattern[str]
    handler: Handler


def _routes(handlers: GeminiRoutes) -> tuple[Route, ...]:
    version = "(?P<version>v1beta|v1)"
    table: list[tuple[str, str, Handler]] = [
        ("POST", f"/{version}/models/(?P<model>{_NAME}):batchGenerateContent", handlers.create_batch),
        ("GET", f"/{version}/batches", handlers.list_batches),
        ("GET", f"/{version}/batches/(?P<batch>{_NAME})", handlers.get_batch),
        ("DELETE", f"/{version}/batches/(?P<batch>{_NAME})", handlers.delete_batch),
        ("POST", f"/{version}/batches/(?P<batch>{_NAME}):cancel", handlers.cancel_batch),
        ("POST", f"/upload/{version}/files", handlers.upload),
        ("GET", f"/{version}/files", handlers.list_files),
        ("GET", f"/{version}/files/(?P<file>{_NAME}):download", handlers.download),
        ("GET", f"/download/{version}/files/(?P<file>{_NAME}):download", handlers.download),
        ("GET", f"/{version}/files/(?P<file>{_NAME})", handlers.get_file),
        ("DELETE", f"/{version}/files/(?P<file>{_NAME})", handlers.delete_file),
    ]
    return tuple(Route(method, re.compile(f"^{path}$"), handler) for method, path, handler in table)


def _marked(request: web.Request) -> bool:
    """Whether the request carries what only a Gemini client sends."""
    return any(mark in request.headers for mark in _MARKS) or "key" in request.query


def owns(request: web.Request) -> bool:
    """Gemini-only paths, or shared ``/v1`` paths asked by a Gemini client (the gateway counts these as
    Gemini's too)."""
    path = request.path
    if path.startswith(PATH_PREFIXES[:-1]):
        return True
    return path.startswith("/v1/") and not path.startswith("/v1/messages") and _marked(request)


def _dispatcher(routes: tuple[Route, ...]) -> Any:
    @web.middleware
    async def gemini_dispatch(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Serve Gemini's routes (the app router cannot tell them from OpenAI's on ``/v1``)."""
        if not owns(request):
            return await handler(request)
        path_matched = False
        for route in routes:
            found = route.pattern.match(request.path)
            if found is None:
                continue
            path_matched = True
            if route.method == request.method:
                return await route.handler(request, found.groupdict())
        if path_matched:
            raise GeminiError(405, f"Method {request.method} is not allowed on {request.path}.")
        return await handler(request)  # not a Gemini route (e.g. Vertex's /v1/projects/...)

    return gemini_dispatch


def _key_alias(store: GeminiStore, state: EmulatorState) -> Any:
    @web.middleware
    async def gemini_credentials(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Present Gemini's credentials in a form the gateway checks (see the module docstring)."""
        if "x-api-key" in request.headers or state.config.api_key is None:
            return await handler(request)
        offered = request.headers.get("x-goog-api-key") or request.query.get("key")
        upload_id = request.query.get("upload_id")
        if offered is None and request.path.startswith("/upload/") and upload_id in store.uploads:
            offered = state.config.api_key  # a live upload URL is the credential
        if offered is None:
            return await handler(request)
        headers = CIMultiDict(request.headers)
        headers["x-api-key"] = offered
        return await handler(request.clone(headers=headers))

    return gemini_credentials


def add_routes(app: web.Application, state: EmulatorState) -> GeminiStore:
    """Mount the Gemini batch and Files routes (see the module docstring for the two middlewares)."""
    store = GeminiStore(state)
    app[GEMINI_STORE_KEY] = store
    app.middlewares.insert(0, _key_alias(store, state))
    app.middlewares.append(_dispatcher(_routes(GeminiRoutes(store))))

    async def quirks(request: web.Request) -> web.Response:
        payload = await request.json()
        if "inline_metadata" in payload:
            store.inline_metadata = bool(payload["inline_metadata"])
        return json_answer({"inline_metadata": store.inline_metadata})

    app.router.add_post("/_emulator/gemini/quirks", quirks)
    return store
