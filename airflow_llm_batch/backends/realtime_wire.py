"""Wire facts of real-time calls shared by every backend: the row header, and one mapping from a failed
HTTP call to :class:`~airflow_llm_batch.realtime.runner.CallFailed`.

``x-llm-batch-custom-id`` carries the row's custom id on each call (an id, never prompt text): a
provider ignores it; the emulator counts answers by it.

Codes are the retry policy's words (``pipeline/policy.py``): a systemic code the provider names
(``insufficient_quota`` on a 429, ``invalid_api_key``...) is kept so the runner's breaker trips; any
other 429 is ``rate_limit_exceeded`` with the server's ``retry-after-ms`` / ``Retry-After`` hint;
401/403 are ``authentication_error`` / ``permission_denied``; a 5xx keeps a retryable code it names
else ``server_error``; other 4xx keep the provider's code (the row's final answer).
"""

from __future__ import annotations

from collections.abc import Mapping

from airflow_llm_batch.pipeline.policy import RETRYABLE_CODES, SYSTEMIC_CODES
from airflow_llm_batch.realtime.runner import CallFailed

CUSTOM_ID_HEADER = "x-llm-batch-custom-id"
_BY_STATUS = {401: "authentication_error", 403: "permission_denied", 408: "timeout", 429: "rate_limit_exceeded"}
MAX_MESSAGE = 500


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the server asks to wait: ``retry-after-ms`` first, then ``Retry-After`` in seconds."""
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return max(0.0, float(headers[name]) * scale)
        except (KeyError, ValueError):
            continue  # absent, or an HTTP date (not used)
    return None


def error_field(body: object, *names: str) -> str | None:
    """The first of ``names`` set in an error body ``{"error": {...}}`` (or in the object itself)."""
    outer: Mapping[str, object] = body if isinstance(body, Mapping) else {}
    inner = outer.get("error")
    error: Mapping[str, object] = inner if isinstance(inner, Mapping) else outer
    return next((str(error[name]) for name in names if error.get(name)), None)


def neutral_code(status: int, code: str | None) -> str:
    """The policy's code for an HTTP error ``status`` whose body named ``code`` (or nothing)."""
    if code in SYSTEMIC_CODES:
        return str(code)
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return code if code in RETRYABLE_CODES else "server_error"
    return code or "invalid_request_error"


def call_failed(status: int, code: str | None, message: str,
                headers: Mapping[str, str] | None = None) -> CallFailed:
    """The CallFailed of an HTTP error answer (the hint is kept for 429 and 5xx only)."""
    neutral = neutral_code(status, code)
    hint = retry_after(headers) if status == 429 or status >= 500 else None
    return CallFailed(neutral, f"HTTP {status}: {message}"[:MAX_MESSAGE], retry_after=hint)


def connection_failed(timed_out: bool, message: str) -> CallFailed:
    """No answer at all: a timeout or a lost connection (the server may have answered: see the runner)."""
    return CallFailed("timeout" if timed_out else "server_error", message[:MAX_MESSAGE])
