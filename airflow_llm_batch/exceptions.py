"""One exception family for the package; each subclass names the decision that was taken."""

from __future__ import annotations


class LLMBatchError(Exception):
    """Base class of every error raised by airflow-llm-batch."""


class InvalidInputError(LLMBatchError):
    """Rows, templates or parameters are wrong; raised before anything is submitted or paid."""


class BadConnectionError(InvalidInputError, ValueError):
    """This Airflow connection (or provider name) cannot work as configured: no key, no host, an
    unknown provider, bad extras. Fix the connection, then clear the task; a retry cannot fix it."""


class RequestTooLargeError(InvalidInputError):
    """One request alone is over the provider's enqueued-token limit: no split or wait can send it."""


class ProviderError(LLMBatchError):
    """The provider refused or failed a batch (validation failure, authentication, quota...).

    ``status_code`` carries the HTTP status when there was one: the trigger stops at once on the
    ones polling again cannot fix (400, 401, 403, 404).
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class BatchExpiredError(ProviderError):
    """A batch expired before every request was answered."""


class BatchCancelledError(ProviderError):
    """A batch was cancelled (by a user, a timeout or on_kill)."""


class BatchTimeoutError(LLMBatchError):
    """The task's own `timeout` passed before its batches ended."""


class ReattachError(LLMBatchError):
    """A recorded intent cannot be matched safely to a provider batch; refusing to pay twice."""


class InputChangedError(LLMBatchError):
    """The rows differ from the ones whose batches were already submitted for this task run."""


class TooManyFailuresError(LLMBatchError):
    """Fewer rows succeeded than the task's `min_success_rate` allows."""


class BudgetExceededError(LLMBatchError):
    """A spend decision, not a fault: the estimate is over the configured budget."""
