"""The one message of a results download that failed past the SDK client's own retries.

Each backend keeps its own ``except`` clause (the SDK exception classes differ: ``openai.APIStatusError``,
``anthropic.APIStatusError``...) and raises what :func:`download_failed` builds, so every provider says the
same thing: what failed, how often it was tried, the status, and what happens next (the answers stay with
the provider, the task's next try downloads them again, nothing is resubmitted or paid twice).

Example::

    >>> str(download_failed("the results of batch b1", 2, TimeoutError())).split(". ")[0]
    "downloading the results of batch b1 failed after the client's 2 retries (TimeoutError, status None)"
"""

from __future__ import annotations

from airflow_llm_batch.exceptions import ProviderError


def download_failed(what: str, retries: int, exc: BaseException) -> ProviderError:
    """The error to raise (``from exc``) when downloading ``what`` failed after ``retries`` retries of the
    client; its ``status_code`` is the HTTP status of ``exc`` when it has one (None for a lost connection)."""
    status = getattr(exc, "status_code", None)
    return ProviderError(f"downloading {what} failed after the client's {retries} retries "
                         f"({type(exc).__name__}, status {status}). The answers are kept by the provider: the "
                         f"task's next try downloads them again and nothing is resubmitted or paid twice; raise "
                         f"the connection's max_retries if this recurs", status_code=status)
