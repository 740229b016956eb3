"""The providers' free token-count endpoints, counted with the SAME functions the emulator bills with.

Routes (``POST``):

* Anthropic ``/v1/messages/count_tokens``: a Messages body -> ``{"input_tokens": N}``
  (:func:`~.anthropic_answers.input_token_count`, the ``usage.input_tokens`` of the same request
  sent without prompt caching);
* Gemini ``/{v1beta|v1}/models/{model}:countTokens``: ``{"contents": [...]}`` or
  ``{"generateContentRequest": {...}}`` -> ``{"totalTokens": N}``
  (:func:`~.gemini_answers.prompt_token_count`, the ``promptTokenCount`` it bills).

Nothing is paid; each call adds one to ``count_tokens_calls`` in the real-time counters
(``GET /_emulator/stats`` -> ``realtime``). The gateway's auth and faults apply as to any API route.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .anthropic_answers import input_token_count
from .gemini_answers import field, prompt_token_count
from .state import ApiError, EmulatorState
from .wire import json_answer, json_object_body


async def _object_body(request: web.Request) -> Mapping[str, Any]:
    return await json_object_body(request, ApiError, "The request body is not valid JSON.")


def add_routes(app: web.Application, state: EmulatorState) -> None:
    """Mount the count-tokens routes of Anthropic and Gemini on ``app`` (see the module docstring)."""

    async def anthropic(request: web.Request) -> web.Response:
        body = await _object_body(request)
        state.realtime.count_tokens_calls += 1
        return json_answer({"input_tokens": input_token_count(body)})

    async def gemini(request: web.Request) -> web.Response:
        body = await _object_body(request)
        inner = field(body, "generateContentRequest")
        state.realtime.count_tokens_calls += 1
        return json_answer({"totalTokens": prompt_token_count(inner if isinstance(inner, Mapping) else body)})

    app.router.add_post("/v1/messages/count_tokens", anthropic)
    for version in ("v1beta", "v1"):
        app.router.add_post(f"/{version}/models/{{model:[^/:]+}}:countTokens", gemini)
