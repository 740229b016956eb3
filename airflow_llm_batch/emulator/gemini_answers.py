"""Answers of the emulated Gemini ``generateContent`` calls inside a batch, built from the emulated model.

:func:`answer` turns one ``GenerateContentRequest`` (wire JSON, as it sits in an inline request or a
line of an input file) into either ``("response", GenerateContentResponse)`` or ``("error", Status)``.

Beyond :mod:`.model`'s rules:

* The echo text is the text parts of the last ``contents`` entry whose role is ``user`` (or has no
  role). The system instruction counts as one prompt message for tokens.
* ``generationConfig.responseMimeType == "application/json"`` with ``responseJsonSchema`` (JSON
  Schema) or ``responseSchema`` (Gemini's OpenAPI subset: upper-case types, ``nullable``) answers
  with schema-derived JSON; without a schema with ``{"text": <echo>}``.
* ``candidateCount`` > 1 returns that many identical candidates.
* ``[[emulator:error:CODE]]`` fails the row with a ``google.rpc.Status`` ``{"code", "message"}``:
  the numeric gRPC code of :data:`GRPC_CODES` (CODE may also be a gRPC name such as
  ``RESOURCE_EXHAUSTED`` or a number); unknown codes give 3 (INVALID_ARGUMENT). The message names
  CODE. ``[[emulator:truncate]]`` halves the answer and reports ``finishReason: "MAX_TOKENS"``.
  ``[[emulator:blocked]]`` and ``[[emulator:filtered]]``: see :mod:`.gemini_safety`.
* A request without ``contents`` fails with code 3, as the real endpoint would refuse it.

Field names are accepted in lowerCamelCase and in snake_case, as protobuf JSON parsers do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import gemini_safety, model
from .schema_values import openapi_to_json_schema, schema_answer

GRPC_CODES: dict[str, int] = {
    "cancelled": 1,
    "unknown": 2,
    "invalid_argument": 3,
    "invalid_request_error": 3,
    "deadline_exceeded": 4,
    "timeout": 4,
    "not_found": 5,
    "model_not_found": 5,
    "already_exists": 6,
    "permission_denied": 7,
    "permission_error": 7,
    "resource_exhausted": 8,
    "rate_limit_exceeded": 8,
    "rate_limit_error": 8,
    "insufficient_quota": 8,
    "failed_precondition": 9,
    "aborted": 10,
    "out_of_range": 11,
    "unimplemented": 12,
    "internal": 13,
    "server_error": 13,
    "internal_error": 13,
    "api_error": 13,
    "unavailable": 14,
    "service_unavailable": 14,
    "overloaded_error": 14,
    "data_loss": 15,
    "unauthenticated": 16,
    "authentication_error": 16,
    "invalid_api_key": 16,
}
"""gRPC status code of a row failed by an ``[[emulator:error:CODE]]`` marker (CODE lower-cased)."""

STATUS_NAMES: dict[int, str] = {
    1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND",
    6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION",
    10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED", 13: "INTERNAL", 14: "UNAVAILABLE",
    15: "DATA_LOSS", 16: "UNAUTHENTICATED",
}
"""Canonical names of the gRPC status codes."""



def field(mapping: Mapping[str, Any], camel: str) -> Any:
    """``mapping[camel]``, or its snake_case spelling (protobuf JSON accepts both)."""
    if camel in mapping:
        return mapping[camel]
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
    return mapping.get(snake)


def grpc_code(code: str) -> int:
    """The gRPC code a marker ``CODE`` stands for (a known name, a gRPC name or a number)."""
    if code.isdigit():
        return int(code)
    return GRPC_CODES.get(code.lower(), 3)


def status(code: int, message: str) -> dict[str, Any]:
    """A ``google.rpc.Status`` as the batch output carries it for a failed row."""
    return {"code": code, "message": message}


def _parts_text(content: Any) -> str:
    parts = field(content, "parts") if isinstance(content, Mapping) else None
    if not isinstance(parts, list):
        return ""
    texts = [p["text"] for p in parts if isinstance(p, Mapping) and isinstance(p.get("text"), str)
             and not p.get("thought")]
    return "\n".join(texts)


def _last_user_text(contents: list[Any]) -> str:
    for content in reversed(contents):
        if isinstance(content, Mapping) and content.get("role", "user") == "user":
            return _parts_text(content)
    return ""


def prompt_token_count(request: Mapping[str, Any]) -> int:
    """Prompt tokens: each content plus the system instruction, as the shared model counts them."""
    texts = [_parts_text(c) for c in field(request, "contents") or [] if isinstance(c, Mapping)]
    system = field(request, "systemInstruction")
    if isinstance(system, Mapping):
        texts.append(_parts_text(system))
    return model.prompt_tokens(texts)


def _answer_text(request: Mapping[str, Any], echo: str) -> str:
    config = field(request, "generationConfig")
    config = config if isinstance(config, Mapping) else {}
    if field(config, "responseMimeType") != "application/json":
        return echo
    schema = field(config, "responseJsonSchema")
    if not isinstance(schema, Mapping):
        openapi = field(config, "responseSchema")
        schema = openapi_to_json_schema(openapi) if isinstance(openapi, Mapping) else None
    if isinstance(schema, Mapping):
        return model.dumps_compact(schema_answer(schema, echo))
    return model.dumps_compact(model.json_object_answer(echo))


def answer(request: Any, *, model_name: str, seed: str) -> tuple[str, dict[str, Any]]:
    """``("response", GenerateContentResponse)`` or ``("error", Status)`` for one request."""
    if not isinstance(request, Mapping):
        return "error", status(3, "Invalid request: expected a GenerateContentRequest object.")
    contents = field(request, "contents")
    if not isinstance(contents, list) or not contents:
        return "error", status(3, "* GenerateContentRequest.contents: contents is not specified")
    echo = _last_user_text(contents)
    markers = model.parse_markers(echo)
    if markers.error_code:
        code = grpc_code(markers.error_code)
        return "error", status(code, f"Emulated failure '{markers.error_code}' requested by a prompt marker.")
    filtered = gemini_safety.filtered_response(echo, prompt_token_count(request))
    if filtered is not None:
        return "response", {**filtered, "modelVersion": model_name.removeprefix("models/")}
    text = _answer_text(request, echo)
    finish = "STOP"
    if markers.truncate:
        text, finish = model.truncate_answer(text), "MAX_TOKENS"
    config = field(request, "generationConfig")
    count = field(config, "candidateCount") if isinstance(config, Mapping) else None
    count = count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 1
    prompt_tokens = prompt_token_count(request)
    answer_tokens = model.count_tokens(text)
    candidates = [{"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": finish,
                   "index": index} for index in range(count)]
    return "response", {
        "candidates": candidates,
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": answer_tokens * count,
            "totalTokenCount": prompt_tokens + answer_tokens * count,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
        },
        "modelVersion": model_name.removeprefix("models/"),
        "responseId": model.short_id("gemini-response", seed),
    }
