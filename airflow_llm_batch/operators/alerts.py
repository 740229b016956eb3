"""Alerts while a task runs: batches open too long (``warn_after`` / ``on_stuck_batch``) and a
``min_success_rate`` that can no longer be met (fail fast).

The stuck decision itself is pipeline/waiting.py's (shared by the trigger and the worker loop); this
module turns the task's settings into its rules and calls the user's callback on the worker.

Example: ``stuck_alert(manifest, 12 * 3600, warned=set(), stop=True)`` -> the trigger's ``stuck`` kwarg.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from airflow_llm_batch.pipeline.manifest import Manifest
from airflow_llm_batch.pipeline.summary import RunSummary

#: a batch open longer than this is reported stuck unless a task sets ``warn_after``
DEFAULT_WARN_AFTER = timedelta(hours=12)

StuckCallback = Callable[[dict[str, Any]], Any]


def warn_after_seconds(task_id: str, value: timedelta | float | None) -> float | None:
    """``warn_after`` in seconds (None: never warn); a bad value names the task and the setting."""
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise ValueError(f"{task_id}: warn_after must be a timedelta or seconds >= 0, or None; got {value!r}")
    return float(seconds)


def stuck_alert(manifest: Manifest, warn_after: float | None, *, warned: Iterable[str], stop: bool) -> dict[str, Any]:
    """The stuck-batch rules of a wait, as plain JSON (trigger kwargs): open batches and when sent."""
    if warn_after is None:
        return {}
    opened = {c.batch_id: float(c.submitted_at) for c in manifest.chunks
              if c.batch_id in manifest.open_batch_ids and c.submitted_at is not None}
    return {"warn_after": warn_after, "opened_at": opened, "warned": sorted(warned), "stop": stop}


def call_on_stuck(callback: StuckCallback | None, info: dict[str, Any], log: logging.Logger | Any) -> None:
    """Call the user's ``on_stuck_batch`` with ``info``; its failure is logged, never fails the task."""
    if callback is None:
        return
    try:
        callback(info)
    except Exception as exc:
        log.warning("on_stuck_batch failed (%s: %s); still waiting for the batches", type(exc).__name__, exc)


def stuck_info(manifest: Manifest, ids: Iterable[str], warn_after: float | None,
               where: dict[str, Any]) -> dict[str, Any]:
    """What ``on_stuck_batch`` receives: the task (``where``), the stuck batches and how long they are open."""
    now = time.time()
    opened = {c.batch_id: c.submitted_at for c in manifest.chunks if c.batch_id and c.submitted_at is not None}
    batch_ids = list(ids)
    return {**where, "provider": manifest.provider, "model": manifest.model, "batch_ids": batch_ids,
            "open_seconds": {b: round(now - opened[b], 1) for b in batch_ids if b in opened},
            "warn_after": warn_after}


def success_rate_lost(summary: RunSummary, minimum: float | None) -> bool:
    """Whether ``minimum`` cannot be met even if every row not yet answered succeeds."""
    if minimum is None or not summary.total:
        return False
    return (summary.total - summary.failed) / summary.total < minimum


def lost_rate_message(summary: RunSummary, minimum: float, cancelled: int) -> str:
    answered = summary.succeeded + summary.failed
    return (f"min_success_rate={minimum:.0%} cannot be met: {summary.failed} of {summary.total} rows already "
            f"failed ({summary.errors_by_code}), so at most {summary.total - summary.failed} can succeed. "
            f"Stopped early: cancelled {cancelled} open batch(es), sent nothing more, landed the "
            f"{answered} answered row(s); {summary.total - answered} row(s) have no result. Fix the cause "
            f"(see the failed rows' reasons), then clear the task.")
