"""Checks of the operators' numeric settings, run in ``__init__``: a bad value is a DAG import error
that names the task and the setting, instead of a failure after batches were paid for.

Example: ``check_settings("triage", poll_interval=30, timeout=3600, min_success_rate=0.9, max_attempts=3)``
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any


def _number(task_id: str, name: str, value: Any, rule: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, timedelta)):
        raise ValueError(f"task {task_id!r}: {name}={value!r} must be a number ({rule})")
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def check_seconds(task_id: str, name: str, value: Any, *, optional: bool = False) -> None:
    """``value`` (seconds or a timedelta) must be > 0; None is allowed when ``optional``."""
    if value is None and optional:
        return
    if _number(task_id, name, value, "seconds > 0") <= 0:
        raise ValueError(f"task {task_id!r}: {name}={value!r} must be > 0 seconds"
                         + (" (or None for no limit)" if optional else ""))


def check_margin(task_id: str, value: Any) -> timedelta:
    """A safety margin (a timedelta, or seconds) must be >= 0; returned as a timedelta."""
    if _number(task_id, "deadline_margin", value, "a timedelta or seconds >= 0") < 0:
        raise ValueError(f"task {task_id!r}: deadline_margin={value!r} must be >= 0 (a timedelta or seconds)")
    return value if isinstance(value, timedelta) else timedelta(seconds=float(value))


def check_count(task_id: str, name: str, value: Any, *, optional: bool = False) -> None:
    """``value`` must be a whole number >= 1; None is allowed when ``optional``."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"task {task_id!r}: {name}={value!r} must be a whole number >= 1"
                         + (" (or None for the provider's limit)" if optional else ""))


def check_rate(task_id: str, name: str, value: Any) -> None:
    """``value`` must be None or a fraction in (0, 1]."""
    if value is None:
        return
    rate = _number(task_id, name, value, "a fraction with 0 < value <= 1")
    if not 0 < rate <= 1:
        hint = f" (did you mean {rate / 100:g}?)" if 1 < rate <= 100 else ""
        raise ValueError(f"task {task_id!r}: {name}={value!r} must be a fraction with 0 < value <= 1{hint}")


def check_settings(task_id: str, *, poll_interval: Any, timeout: Any, min_success_rate: Any,
                   max_attempts: Any) -> None:
    """The waiting and retry settings of LLMBatchOperator (``max_rows_per_chunk`` is checked by
    RequestOptions, which every request-building operator shares)."""
    check_seconds(task_id, "poll_interval", poll_interval)
    check_seconds(task_id, "timeout", timeout, optional=True)
    check_rate(task_id, "min_success_rate", min_success_rate)
    check_count(task_id, "max_attempts", max_attempts)


#: how the prompt tokens of the estimate are counted (``estimate=``)
ESTIMATE_METHODS = ("tokenizer", "api")


def check_estimate_method(task_id: str, value: Any) -> None:
    """``estimate`` must be "tokenizer" (offline, the default) or "api" (the provider's count-tokens endpoint)."""
    if value not in ESTIMATE_METHODS:
        raise ValueError(f"task {task_id!r}: estimate={value!r} is not a way to count tokens: use \"tokenizer\" "
                         "(offline, the default) or \"api\" (the provider's free count-tokens endpoint, "
                         "Anthropic and Gemini)")


#: the names a result row's own fields and the package's additions have: a carried column of the same
#: name would replace one in the results (or be replaced by it), so a carried column must not use them
RESULT_NAMES = ("key", "status", "output", "parsed", "error", "usage", "model", "batch_id", "custom_id",
                "attempts", "cached", "answered_by", "fingerprint", "finish_reason", "repeat_of", "cost_usd")


def check_carry_columns(task_id: str, columns: Any) -> tuple[str, ...]:
    """``carry_columns`` as a tuple of distinct column names, none of them a result field's name."""
    if isinstance(columns, str) or not all(isinstance(c, str) and c for c in columns):
        raise ValueError(f"task {task_id!r}: carry_columns={columns!r} must be a list of column names")
    clashes = [c for c in columns if c in RESULT_NAMES]
    if clashes:
        raise ValueError(f"task {task_id!r}: carry_columns {clashes} clash with result fields of the same name "
                         f"(reserved: {', '.join(RESULT_NAMES)}); rename them in the rows, e.g. "
                         f"SELECT {clashes[0]} AS row_{clashes[0]} in the query")
    return tuple(dict.fromkeys(columns))
