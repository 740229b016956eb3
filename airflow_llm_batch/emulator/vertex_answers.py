"""Answers of the emulated Gemini model on Vertex AI: one ``GenerateContentRequest`` in, one
prediction out, built from the shared deterministic model (:mod:`.model`).

:func:`predict` returns a :class:`Prediction`: either a ``GenerateContentResponse`` (camelCase,
as the service writes it) or the ``status`` text of a failed row, which Vertex writes as
``"<HTTP reason>: {"error": {"code": N, "message": "...", "status": "CANONICAL"}}"``.

Request fields are read in either spelling (``systemInstruction`` / ``system_instruction``...),
as the service's JSON parser accepts both. Beyond :mod:`.model`'s rules:

* the prompt is the text of the last ``contents`` entry whose role is ``user`` (or unset);
* ``generationConfig.responseMimeType == "application/json"`` answers JSON: derived from
  ``responseJsonSchema`` (a JSON schema) or ``responseSchema`` (Vertex's OpenAPI subset, upper
  case types), else ``{"text": <prompt>}``;
* ``[[emulator:truncate]]`` answers half the text with ``finishReason: MAX_TOKENS``;
* ``[[emulator:blocked]]`` / ``[[emulator:filtered]]``: a blocked prompt / a withheld answer (see
  :mod:`.gemini_safety`);
* ``[[emulator:error:CODE]]`` fails the row: ``CODE`` is a canonical Google status
  (``RESOURCE_EXHAUSTED``...) or one of :data:`MARKER_STATUS`'s keys; any other code is a 400
  ``INVALID_ARGUMENT``. The message names the marker code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import gemini_safety, model
from .schema_values import openapi_to_json_schema, schema_answer

#: canonical Google status -> HTTP status
CANONICAL_HTTP: dict[str, int] = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "INTERNAL": 500,
    "UNKNOWN": 500,
    "DATA_LOSS": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}

#: lower-case marker codes (the other emulated APIs' vocabulary) -> canonical Google status
MARKER_STATUS: dict[str, str] = {
    "rate_limit_exceeded": "RESOURCE_EXHAUSTED",
    "rate_limit_error": "RESOURCE_EXHAUSTED",
    "insufficient_quota": "RESOURCE_EXHAUSTED",
    "server_error": "INTERNAL",
    "internal_error": "INTERNAL",
    "api_error": "INTERNAL",
    "service_unavailable": "UNAVAILABLE",
    "overloaded_error": "UNAVAILABLE",
    "timeout": "DEADLINE_EXCEEDED",
    "not_found": "NOT_FOUND",
    "model_not_found": "NOT_FOUND",
    "invalid_api_key": "UNAUTHENTICATED",
    "authentication_error": "UNAUTHENTICATED",
    "permission_denied": "PERMISSION_DENIED",
    "permission_error": "PERMISSION_DENIED",
}

HTTP_REASONS: dict[int, str] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    429: "Too Many Requests",
    499: "Client Closed Request",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

_JSON_MIME = "application/json"


@dataclass(frozen=True)
class Prediction:
    """The outcome of one request: ``status`` is "" on success, else the error text."""

    status: str
    response: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.status


def _get(mapping: Mapping[str, Any], camel: str) -> Any:
    """A request field in camelCase or snake_case."""
    if camel in mapping:
        return mapping[camel]
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
    return mapping.get(snake)


def error_status(canonical: str, message: str) -> str:
    """The ``status`` text of a failed row, as the service writes it."""
    code = CANONICAL_HTTP.get(canonical, 400)
    body = {"error": {"code": code, "message": message, "status": canonical}}
    return f"{HTTP_REASONS.get(code, 'Error')}: {json.dumps(body)}"


def canonical_for_marker(code: str) -> str:
    """The canonical status a ``[[emulator:error:CODE]]`` marker stands for."""
    if code.upper() in CANONICAL_HTTP:
        return code.upper()
    return MARKER_STATUS.get(code, "INVALID_ARGUMENT")


def _parts_text(content: Any) -> str:
    if not isinstance(content, Mapping):
        return ""
    parts = content.get("parts")
    if isinstance(parts, Mapping):  # a single part is accepted where a list is expected
        parts = [parts]
    if not isinstance(parts, list):
        return ""
    return "\n".join(str(p["text"]) for p in parts if isinstance(p, Mapping) and isinstance(p.get("text"), str))


def prompt_text(request: Mapping[str, Any]) -> str:
    """Text of the last user turn of ``contents``."""
    contents = request.get("contents")
    if isinstance(contents, Mapping):
        contents = [contents]
    if not isinstance(contents, list):
        return ""
    for content in reversed(contents):
        if isinstance(content, Mapping) and content.get("role", "user") in ("user", None):
            return _parts_text(content)
    return ""


def prompt_tokens(request: Mapping[str, Any]) -> int:
    """Prompt tokens: the system instruction counts as one message, each content as another."""
    texts: list[str] = []
    system = _get(request, "systemInstruction")
    if system:
        texts.append(_parts_text(system) if isinstance(system, Mapping) else str(system))
    contents = request.get("contents")
    for content in contents if isinstance(contents, list) else [contents]:
        texts.append(_parts_text(content))
    return model.prompt_tokens(texts)


def _answer_text(request: Mapping[str, Any], text: str) -> str:
    config = _get(request, "generationConfig")
    config = config if isinstance(config, Mapping) else {}
    if _get(config, "responseMimeType") != _JSON_MIME:
        return text
    json_schema = _get(config, "responseJsonSchema")
    if isinstance(json_schema, Mapping):
        return model.dumps_compact(schema_answer(json_schema, text))
    openapi = _get(config, "responseSchema")
    if isinstance(openapi, Mapping):
        return model.dumps_compact(schema_answer(openapi_to_json_schema(openapi), text))
    return model.dumps_compact(model.json_object_answer(text))


def predict(request: Any, *, model_name: str, seed: str, created: str) -> Prediction:
    """The prediction for one ``GenerateContentRequest`` (a 400 status if it is not one)."""
    if not isinstance(request, Mapping):
        return Prediction(error_status("INVALID_ARGUMENT", "The request is not a GenerateContentRequest object."))
    contents = request.get("contents")
    if not contents:
        return Prediction(error_status("INVALID_ARGUMENT", "Unable to submit request because it has an empty "
                                                           "contents field."))
    text = prompt_text(request)
    markers = model.parse_markers(text)
    if markers.error_code:
        canonical = canonical_for_marker(markers.error_code)
        return Prediction(error_status(canonical, f"Emulated failure '{markers.error_code}' requested by a "
                                                  f"prompt marker."))
    filtered = gemini_safety.filtered_response(text, prompt_tokens(request))
    if filtered is not None:
        return Prediction("", {**filtered, "modelVersion": model_name.rsplit("/", 1)[-1], "createTime": created})
    answer = _answer_text(request, text)
    finish = "STOP"
    if markers.truncate:
        answer, finish = model.truncate_answer(answer), "MAX_TOKENS"
    prompt, output = prompt_tokens(request), model.count_tokens(answer)
    version = model_name.rsplit("/", 1)[-1]
    response = {
        "candidates": [{"content": {"role": "model", "parts": [{"text": answer}]}, "finishReason": finish,
                        "avgLogprobs": -0.05}],
        "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": output,
                          "totalTokenCount": prompt + output, "trafficType": "ON_DEMAND"},
        "modelVersion": version,
        "createTime": created,
        "responseId": model.short_id("vertex-response", seed),
    }
    return Prediction("", response)
