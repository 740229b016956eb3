"""One decoder for ``GenerateContentResponse`` answers and ``google.rpc.Status`` errors, and one set of
job-state and status tables, shared by the Gemini (Developer API) and Vertex AI backends.

Both services run the same model behind the same response type, so a row's outcome must not depend
on which one answered it. Decisions (one place, so the two backends cannot drift apart again):

* ``promptFeedback.blockReason`` and no candidate -> ``prompt_blocked`` (nothing was generated);
  no candidate without a block reason -> ``missing_result`` (the retry policy asks again).
* a candidate whose ``finishReason`` is a filter (``SAFETY``, ``RECITATION``, ``BLOCKLIST``,
  ``PROHIBITED_CONTENT``, ``SPII``, ``IMAGE_SAFETY``...) -> ``content_filter``; any partial text is
  kept on the row.
* every other finish reason is a success with the neutral :class:`FinishReason` (``MAX_TOKENS`` ->
  ``length``, ``STOP`` -> ``stop``, anything else -> ``other``).
* usage: input = ``promptTokenCount`` + ``toolUsePromptTokenCount`` (the tool-use prompt is billed
  as input and is not part of ``promptTokenCount``); output = ``candidatesTokenCount`` +
  ``thoughtsTokenCount`` (thinking is billed as output); cached = ``cachedContentTokenCount`` (part
  of ``promptTokenCount``).
* an error, whether a numeric gRPC code (Gemini rows, job errors), an HTTP code with a status name
  (Vertex rows) or a status name alone -> its canonical status -> the retry policy's code
  (:data:`CANONICAL_CODES`); the canonical status and the HTTP code stay in the message.

Field names are read in lowerCamelCase and snake_case (a BigQuery output may carry either).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any

from airflow_llm_batch.pipeline.types import BatchState, FinishReason, RawResult, Usage

#: batch (Developer API) and job (Vertex AI, google-genai) states -> neutral states
JOB_STATES: dict[str, BatchState] = {
    "BATCH_STATE_UNSPECIFIED": BatchState.PENDING,
    "BATCH_STATE_PENDING": BatchState.PENDING,
    "BATCH_STATE_RUNNING": BatchState.RUNNING,
    "BATCH_STATE_SUCCEEDED": BatchState.COMPLETED,
    "BATCH_STATE_FAILED": BatchState.FAILED,
    "BATCH_STATE_CANCELLED": BatchState.CANCELLED,
    "BATCH_STATE_EXPIRED": BatchState.EXPIRED,
    "JOB_STATE_UNSPECIFIED": BatchState.PENDING,
    "JOB_STATE_QUEUED": BatchState.PENDING,
    "JOB_STATE_PENDING": BatchState.PENDING,
    "JOB_STATE_RUNNING": BatchState.RUNNING,
    "JOB_STATE_UPDATING": BatchState.RUNNING,
    "JOB_STATE_PAUSED": BatchState.RUNNING,
    "JOB_STATE_CANCELLING": BatchState.CANCELLING,
    "JOB_STATE_SUCCEEDED": BatchState.COMPLETED,
    "JOB_STATE_PARTIALLY_SUCCEEDED": BatchState.COMPLETED,
    "JOB_STATE_FAILED": BatchState.FAILED,
    "JOB_STATE_CANCELLED": BatchState.CANCELLED,
    "JOB_STATE_EXPIRED": BatchState.EXPIRED,
}

#: canonical Google status -> the error code the retry policy knows (400-class statuses all say
#: ``invalid_request_error``, as OpenAI and Anthropic do; the status itself stays in the message)
CANONICAL_CODES: dict[str, str] = {
    "INVALID_ARGUMENT": "invalid_request_error",
    "FAILED_PRECONDITION": "invalid_request_error",
    "OUT_OF_RANGE": "invalid_request_error",
    "ALREADY_EXISTS": "invalid_request_error",
    "UNIMPLEMENTED": "invalid_request_error",
    "NOT_FOUND": "not_found",
    "RESOURCE_EXHAUSTED": "rate_limit_exceeded",
    "INTERNAL": "server_error",
    "UNKNOWN": "server_error",
    "DATA_LOSS": "server_error",
    "ABORTED": "server_error",
    "UNAVAILABLE": "service_unavailable",
    "DEADLINE_EXCEEDED": "timeout",
    "UNAUTHENTICATED": "authentication_error",
    "PERMISSION_DENIED": "permission_denied",
    "CANCELLED": "batch_cancelled",
}
#: google.rpc.Code numbers -> canonical status
RPC_CANONICAL: dict[int, str] = {
    1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND",
    6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION",
    10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED", 13: "INTERNAL", 14: "UNAVAILABLE",
    15: "DATA_LOSS", 16: "UNAUTHENTICATED",
}
#: HTTP status -> canonical status, for an error that names no status
HTTP_CANONICAL: dict[int, str] = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED", 409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL",
    501: "UNIMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}
#: HTTP reason phrase (the start of a Vertex row ``status`` text) -> HTTP status
REASON_HTTP: dict[str, int] = {
    "Bad Request": 400, "Unauthorized": 401, "Forbidden": 403, "Not Found": 404, "Conflict": 409,
    "Too Many Requests": 429, "Internal Server Error": 500, "Not Implemented": 501, "Bad Gateway": 502,
    "Service Unavailable": 503, "Gateway Timeout": 504,
}
PROMPT_BLOCKED = "prompt_blocked"
CONTENT_FILTER = "content_filter"
_HTTP_IN_TEXT = re.compile(r"\b([45]\d\d)\b")


def field(mapping: Mapping[str, Any], camel: str) -> Any:
    """``mapping[camel]`` or its snake_case spelling."""
    if camel in mapping:
        return mapping[camel]
    return mapping.get(_snake_case(camel))


@functools.cache
def _snake_case(camel: str) -> str:
    """``promptTokenCount`` -> ``prompt_token_count``; kept per name (the decoders ask for a few fixed names,
    several per answer, most of them absent: a regular expression each time was ~1 us per name)."""
    return re.sub(r"([A-Z])", lambda m: f"_{m.group(1).lower()}", camel)


def int64(value: Any) -> int:
    """An int64 from protobuf JSON (often sent as a string); 0 when absent or unreadable."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else None


def status_error(error: Mapping[str, Any], default_message: str = "") -> tuple[str, str]:
    """A ``google.rpc.Status`` (``code`` a gRPC number or an HTTP status, ``status`` a canonical name,
    either may be missing) -> (neutral error code, message naming the canonical status)."""
    number = _number(error.get("code"))
    named = str(error.get("status") or "").upper() or None
    if named is None and isinstance(error.get("code"), str) and number is None:
        named = str(error["code"]).upper()  # a status name sent as the code
    http = number if number is not None and number >= 100 else None
    canonical = named or (RPC_CANONICAL.get(number) if number is not None and number < 100 else None)
    canonical = canonical or HTTP_CANONICAL.get(http or 0)
    return _outcome(canonical, http, str(error.get("message") or default_message))


def status_text_error(text: str) -> tuple[str, str]:
    """A Vertex row ``status`` text (``"Bad Request: {"error": {...}}"``, or free text) -> code, message."""
    reason, _, rest = text.partition(": ")
    try:
        body = json.loads(rest)["error"]
    except (ValueError, KeyError, TypeError):
        body = None
    if isinstance(body, Mapping):
        return status_error(body, default_message=text)
    found = _HTTP_IN_TEXT.search(text)
    http = int(found.group(1)) if found else REASON_HTTP.get(reason.strip())
    return _outcome(HTTP_CANONICAL.get(http or 0), http, text)


def _outcome(canonical: str | None, http: int | None, message: str) -> tuple[str, str]:
    """The policy's code, and the message led by the canonical status and the HTTP code when known."""
    code = CANONICAL_CODES.get(canonical or "") or (str(http) if http else "error")
    where = " ".join(part for part in (canonical, f"({http})" if http else None) if part)
    return code, (f"{where}: {message}" if where else message or "no reason given")[:2000]


def usage_of(response: Mapping[str, Any]) -> Usage:
    """The neutral usage of one response (see the module docstring for what counts where)."""
    metadata = field(response, "usageMetadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    return Usage(
        int64(field(metadata, "promptTokenCount")) + int64(field(metadata, "toolUsePromptTokenCount")),
        int64(field(metadata, "candidatesTokenCount")) + int64(field(metadata, "thoughtsTokenCount")),
        int64(field(metadata, "cachedContentTokenCount")),
    )


def _answer_text(candidate: Mapping[str, Any]) -> str:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, Mapping) else None
    return "".join(part["text"] for part in parts or [] if isinstance(part, Mapping)
                   and isinstance(part.get("text"), str) and not part.get("thought"))


def decode_response(custom_id: str, response: Mapping[str, Any]) -> RawResult:
    """One ``GenerateContentResponse`` -> RawResult (the first candidate's text, thoughts left out)."""
    usage, model = usage_of(response), field(response, "modelVersion")
    candidates = response.get("candidates")
    if not isinstance(candidates, list) or not candidates or not isinstance(candidates[0], Mapping):
        feedback = field(response, "promptFeedback")
        blocked = field(feedback, "blockReason") if isinstance(feedback, Mapping) else None
        if blocked:
            return RawResult(custom_id, ok=False, model=model, usage=usage, error_code=PROMPT_BLOCKED,
                             error_message=f"the prompt was blocked ({blocked}); no answer was generated")
        return RawResult(custom_id, ok=False, model=model, usage=usage, error_code="missing_result",
                         error_message="the response holds no candidate")
    candidate = candidates[0]
    text = _answer_text(candidate)
    word = str(field(candidate, "finishReason") or "") or None
    finish = FinishReason.parse(word)
    if finish is FinishReason.CONTENT_FILTER:
        return RawResult(custom_id, ok=False, text=text or None, model=model, usage=usage,
                         error_code=CONTENT_FILTER, error_message=f"the answer was withheld (finishReason {word})",
                         finish_reason=finish)
    return RawResult(custom_id, ok=True, text=text, model=model, usage=usage, finish_reason=finish)


def decode_answer(custom_id: str, item: Mapping[str, Any]) -> RawResult:
    """One answer holding a ``response`` or an ``error`` -> RawResult: a Developer API inline
    response or output line (``error`` a Status), or a Vertex output record (``status`` a text, empty
    on success; ``response`` an object, or JSON text from a BigQuery column)."""
    error = item.get("error") or item.get("status") or None  # Vertex writes status "" on success
    if isinstance(error, Mapping):
        code, message = status_error(error)
        return RawResult(custom_id, ok=False, error_code=code, error_message=message)
    if isinstance(error, str):
        code, message = status_text_error(error)
        return RawResult(custom_id, ok=False, error_code=code, error_message=message)
    response = item.get("response")
    if isinstance(response, str) and response[:1] == "{":  # a BigQuery JSON column read as text
        try:
            response = json.loads(response)
        except ValueError:
            response = None
    if isinstance(response, Mapping):
        return decode_response(custom_id, response)
    return RawResult(custom_id, ok=False, error_code="missing_result",
                     error_message="no response for this row" if response is None else "the response is not an object")
