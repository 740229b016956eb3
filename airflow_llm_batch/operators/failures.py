"""One place that decides which errors a retry cannot fix: they end the task at once.

Airflow retries any exception; for a wrong setting, a bad connection or a run that already landed
below ``min_success_rate`` each retry only repeats the failure (and re-lands, re-MERGEs, alerts
late). Methods wrapped with :func:`fail_without_retry` turn those errors into
``AirflowFailException`` (the task fails on its first try) with the reason and what to do.
Everything else (provider outages, timeouts, lost workers) is left to Airflow's retries, which
re-attach to the batches already paid for.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from airflow.sdk.exceptions import AirflowFailException

from airflow_llm_batch.exceptions import (
    BudgetExceededError,
    InputChangedError,
    InvalidInputError,
    ReattachError,
    TooManyFailuresError,
)

F = TypeVar("F", bound=Callable[..., Any])

#: error type -> what to do (the error's own message says what is wrong)
NOT_RETRIED: dict[type[Exception], str] = {
    InvalidInputError: "fix the rows, parameters or connection named above, then clear the task",
    BudgetExceededError: "raise max_cost_usd or reduce the rows, then clear the task",
    TooManyFailuresError: "see the failed rows' reasons in the landed results, fix the cause, then clear the task",
    ReattachError: "check the provider's batches listed above, then clear the task",
    InputChangedError: "restore the input, or remove the run's workspace folder to start over, then clear the task",
}


#: raw errors of the storage layer that say a configured place cannot hold the run's files
NOT_A_FOLDER = (NotADirectoryError, FileExistsError)


def permanent_failure(exc: BaseException) -> AirflowFailException | None:
    """The AirflowFailException for ``exc`` when no retry can fix it, else None."""
    for kind, todo in NOT_RETRIED.items():
        if isinstance(exc, kind):
            return AirflowFailException(f"{type(exc).__name__}: {exc}\nNot retried (a retry cannot fix this): "
                                        f"{todo}.")
    if isinstance(exc, NOT_A_FOLDER):
        where = getattr(exc, "filename", None) or exc
        return AirflowFailException(f"{where} is not a writable folder ({type(exc).__name__}): a file is in "
                                    f"the way. Point workspace= (or [llm_batch] workspace) and destination= at "
                                    f"folders the workers can write, then clear the task. Not retried.")
    if isinstance(exc, PermissionError):
        where = getattr(exc, "filename", None)
        return AirflowFailException(
            f"Access denied{f' to {where}' if where else ''} ({exc}) while reading or writing the run's files. "
            f"Check the credentials of the connection named in workspace= / destination= / rows= "
            f"(scheme://CONN_ID@bucket/...) or the worker's own (ADC, AWS_*, AZURE_STORAGE_*), and that "
            f"they may read and write there; then clear the task (it re-attaches to any batch already "
            f"paid for). Not retried: a retry with the same credentials fails the same way.")
    return None


def fail_without_retry(method: F) -> F:
    """Decorate ``execute`` / ``execute_complete``: errors listed in NOT_RETRIED fail the task for good."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            final = permanent_failure(exc)
            if final is None:
                raise
            raise final from exc

    return cast(F, wrapper)
