"""Decisions about failures: which rows are worth another attempt, when to stop (circuit breaker),
which batch failures mean "try again later", and how much may be in flight at once."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

#: row error codes that another attempt can fix (provider codes seen across OpenAI/Anthropic/Gemini)
RETRYABLE_CODES = frozenset({
    "rate_limit_exceeded", "rate_limit_error", "429", "server_error", "internal_server_error", "500", "502",
    "503", "504", "api_error", "overloaded_error", "service_unavailable", "timeout", "batch_expired",
    "missing_result",
})
#: codes a user may add to ``retry_codes``: re-asking can help but costs money again
OPTIONAL_RETRY_CODES = frozenset({"invalid_output", "truncated", "batch_cancelled"})
#: codes that mean the whole account or key is broken: retrying only burns quota and time
SYSTEMIC_CODES = frozenset({
    "authentication_error", "invalid_api_key", "insufficient_quota", "billing_hard_limit_reached",
    "billing_error", "permission_error", "permission_denied", "account_deactivated", "401", "403",
})
#: batch-level error codes that mean "not now": the chunk goes back to the queue, nothing is lost
REQUEUE_BATCH_CODES = frozenset({"token_limit_exceeded"})


@dataclass(frozen=True)
class RetryPolicy:
    """How failed rows are handled after a batch ends.

    Example: ``RetryPolicy(max_attempts=3, retry_codes=RETRYABLE_CODES | {"invalid_output"})``
    """

    max_attempts: int = 3
    retry_codes: frozenset[str] = RETRYABLE_CODES
    breaker_fraction: float = 0.5
    systemic_codes: frozenset[str] = SYSTEMIC_CODES
    max_requeues: int = 50

    def should_retry(self, code: str | None, attempt: int) -> bool:
        return code is not None and code in self.retry_codes and attempt < self.max_attempts

    def breaker_trip(self, failures: Counter[str], rows: int) -> tuple[str, int] | None:
        """The systemic code that failed at least ``breaker_fraction`` of a batch's rows, if any."""
        for code, count in failures.most_common():
            if code in self.systemic_codes and rows and count / rows >= self.breaker_fraction:
                return code, count
        return None


@dataclass(frozen=True)
class Admission:
    """What may be in flight at once: a per-model enqueued-token budget and a batch count cap.

    Example: ``Admission(token_budget=2_000_000, max_open_batches=4)``
    """

    token_budget: int | None = None
    max_open_batches: int | None = None

    def admits(self, open_batches: int, open_tokens: int, chunk_tokens: int) -> bool:
        if self.max_open_batches is not None and open_batches >= self.max_open_batches:
            return False
        if self.token_budget is not None and open_batches and open_tokens + chunk_tokens > self.token_budget:
            return False
        return True
