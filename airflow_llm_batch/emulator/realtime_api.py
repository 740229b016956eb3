"""Real-time endpoints of every emulated provider, answered by the SAME functions as batch rows.

Routes (``POST``):

* OpenAI ``/v1/chat/completions``, ``/v1/responses``, ``/v1/embeddings``; Azure the same under
  ``/openai`` and ``/openai/deployments/{deployment}/...`` (the path ``AsyncAzureOpenAI`` builds);
* Anthropic ``/v1/messages``;
* Gemini ``/{v1beta|v1}/models/{model}:generateContent``;
* Vertex ``/{v1|v1beta1}/projects/{p}/locations/{l}/publishers/google/models/{model}:generateContent``.

Each request passes the :class:`~.realtime_state.RealtimeGate` (concurrency limit, first-send
429/5xx injection, counters), waits ``realtime_latency_seconds``, then is answered by the batch
path's answer function; a refusal is the provider's own transient error (with ``Retry-After``), or on the
Gemini and Vertex routes with ``realtime_retry_delay_seconds`` set, Google's quota 429 whose delay is a
``google.rpc.RetryInfo`` in the error's ``details`` (no ``Retry-After``).
The gateway's auth, one-off faults and fault plan apply as to any API route.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from . import wire
from .anthropic_answers import CacheUse, message_result
from .gateway import Provider, provider_for
from .gemini_answers import STATUS_NAMES
from .gemini_answers import answer as gemini_answer
from .gemini_api import quota_exhausted
from .openai_answers import RowContext, answerer_for
from .realtime_state import CUSTOM_ID_HEADER, RealtimeGate, body_hash
from .state import ApiError, EmulatorState
from .vertex_answers import CANONICAL_HTTP, predict

Answer = Callable[[web.Request, Any, str], tuple[int, dict[str, Any]]]
"""(request, parsed body, body hash) -> (HTTP status, JSON answer)."""

OPENAI_ENDPOINTS = ("chat/completions", "responses", "embeddings")
ANTHROPIC_ERROR_STATUS = {"invalid_request_error": 400, "authentication_error": 401, "permission_error": 403,
                          "not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429,
                          "api_error": 500, "overloaded_error": 529}
GOOGLE_PROVIDERS = frozenset({"gemini", "vertex"})


def _openai(state: EmulatorState, endpoint: str) -> Answer:
    answerer = answerer_for(f"/v1/{endpoint}", state.config.embedding_dimensions)
    assert answerer is not None

    def answer(request: web.Request, body: Any, digest: str) -> tuple[int, dict[str, Any]]:
        outcome = answerer(body, RowContext(seed=f"realtime\x1f{digest}", created=int(state.now())))
        return outcome.status_code, outcome.body

    return answer


def _anthropic(request: web.Request, body: Any, digest: str) -> tuple[int, dict[str, Any]]:
    result = message_result(body, seed=f"realtime\x1f{digest}", cache=CacheUse())
    if result["type"] != "succeeded":
        error = result["error"]["error"]
        return ANTHROPIC_ERROR_STATUS.get(error["type"], 400), {"type": "error", "error": error}
    message = result["message"]
    message["usage"]["service_tier"] = "standard"
    return 200, message


def _google_error(canonical: str, message: str) -> tuple[int, dict[str, Any]]:
    status = CANONICAL_HTTP.get(canonical, 400)
    return status, {"error": {"code": status, "message": message, "status": canonical}}


def _gemini(request: web.Request, body: Any, digest: str) -> tuple[int, dict[str, Any]]:
    kind, value = gemini_answer(body, model_name=f"models/{request.match_info['model']}", seed=digest)
    if kind == "response":
        return 200, value
    return _google_error(STATUS_NAMES.get(int(value["code"]), "INVALID_ARGUMENT"), str(value["message"]))


def _vertex(state: EmulatorState) -> Answer:
    def answer(request: web.Request, body: Any, digest: str) -> tuple[int, dict[str, Any]]:
        prediction = predict(body, model_name=request.match_info["model"], seed=digest,
                             created=wire.rfc3339(state.now()) or "")
        if prediction.ok and prediction.response is not None:
            return 200, prediction.response
        error = json.loads(prediction.status.partition(": ")[2])["error"]  # "Bad Request: {json}"
        return _google_error(str(error["status"]), str(error["message"]))

    return answer


def _refusal(provider: Provider, status: int, retry_delay: float | None) -> web.Response:
    """The answer refusing a real-time request: the provider's transient error, or on Google's routes with
    ``realtime_retry_delay_seconds`` set, Google's quota 429 with its ``RetryInfo``."""
    if status == 429 and retry_delay is not None and provider.name in GOOGLE_PROVIDERS:
        return quota_exhausted(retry_delay)
    return provider.transient_error(status)


def _handler(state: EmulatorState, gate: RealtimeGate, answer: Answer, provider: Provider) -> Callable[
        [web.Request], Awaitable[web.StreamResponse]]:
    latency = state.config.realtime_latency_seconds  # the config is frozen
    retry_delay = state.config.realtime_retry_delay_seconds

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            body = await wire.read_json(request)
        except ValueError as exc:
            raise ApiError(400, "The request body is not valid JSON.") from exc
        if not isinstance(body, Mapping):
            return wire.json_answer(provider.error_body(400, "The request body must be a JSON object."), status=400)
        digest = body_hash(body)
        refused = gate.refusal(provider.name, digest)
        if refused is not None:
            return _refusal(provider, refused, retry_delay)
        gate.enter()
        paid = False
        try:
            if latency:
                await asyncio.sleep(latency)
            status, answer_body = answer(request, body, digest)
            paid = status == 200
            return wire.json_answer(answer_body, status=status)
        finally:
            gate.leave(digest, request.headers.get(CUSTOM_ID_HEADER), paid)

    return handle


def _provider(path: str) -> Provider:
    provider = provider_for(path)
    assert provider is not None, path
    return provider


def add_routes(app: web.Application, state: EmulatorState) -> RealtimeGate:
    """Mount the real-time routes of every provider on ``app`` (see the module docstring)."""
    gate = RealtimeGate(state.config, state.realtime)
    router = app.router
    for endpoint in OPENAI_ENDPOINTS:
        handle = _handler(state, gate, _openai(state, endpoint), _provider("/openai"))
        for prefix in ("/v1", "/openai", "/openai/deployments/{deployment}"):
            router.add_post(f"{prefix}/{endpoint}", handle)
    router.add_post("/v1/messages", _handler(state, gate, _anthropic, _provider("/v1/messages")))
    gemini = _handler(state, gate, _gemini, _provider("/v1beta/"))
    vertex = _handler(state, gate, _vertex(state), _provider("/v1/projects/"))
    for version in ("v1beta", "v1"):
        router.add_post(f"/{version}/models/{{model:[^/:]+}}:generateContent", gemini)
    for version in ("v1", "v1beta1"):
        router.add_post(f"/{version}/projects/{{project}}/locations/{{location}}/publishers/google/models/"
                        f"{{model:[^/:]+}}:generateContent", vertex)
    return gate
