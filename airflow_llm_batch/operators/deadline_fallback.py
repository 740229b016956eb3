"""``deadline=`` in batch mode: when open batches cannot be trusted to land in time, give way to real-time.

The switch time is ``deadline - (rows still open / the assumed real-time rate) - deadline_margin``
(:class:`~airflow_llm_batch.realtime.deadline.Fallback`, the rate from ``max_concurrency``,
``realtime_latency_estimate`` and ``requests_per_minute``: ``RealtimeSettings.rows_per_second``).
The trigger and the worker's own wait both end at that moment (``switch_at`` in pipeline/waiting.py).
The real-time part is priced against ``max_cost_usd`` first (operators/fallback_budget.py: over it, the
batches keep running); then, on the worker:

1. the switch is recorded in the manifest (``deadline_fallback``): from here on no batch is created, and a
   try that crashed during the switch finishes it instead;
2. the open batches are recorded as cancelled by the task, then cancelled (the existing cancel path);
3. the worker waits for each to reach its end (OpenAI and the emulator answer the rows done before the
   cancel), collects them: answered rows are kept, the rest become retry chunks (never resent by batch);
4. every chunk not answered is claimed for real-time and sent, then the task lands.

Example::

    switch = switch_time(run.manifest, run.realtime, run_start(context))
    if fallback_due(run.manifest, switch, time.time()):
        fall_back(run, parser, settings, poll_interval=run.wait.poll_interval, log=log)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone

from airflow_llm_batch.exceptions import ProviderError
from airflow_llm_batch.operators.fallback_budget import declined, switched
from airflow_llm_batch.operators.realtime_mode import send_in_realtime
from airflow_llm_batch.operators.run_context import TaskRun
from airflow_llm_batch.operators.settings import RealtimeSettings
from airflow_llm_batch.operators.wait import wait_on_worker
from airflow_llm_batch.pipeline.manifest import Manifest
from airflow_llm_batch.pipeline.parsing import OutputParser
from airflow_llm_batch.pipeline.run import BatchRun
from airflow_llm_batch.pipeline.waiting import WaitOutcome, WaitRules
from airflow_llm_batch.realtime.deadline import Fallback, deadline_at
from airflow_llm_batch.realtime.runner import RunnerSettings

log = logging.getLogger(__name__)

#: the longest pause between polls while a cancelled batch finishes cancelling (seconds)
CANCEL_POLL_SECONDS = 1.0


def rows_open(manifest: Manifest) -> int:
    """Rows with no final result yet: in open batches, waiting to be sent, or waiting for a retry."""
    return sum(c.count for c in manifest.chunks if not c.is_final)


def fallback_plan(manifest: Manifest, realtime: RealtimeSettings, run_start: datetime) -> Fallback | None:
    """The deadline's fallback for a batch-mode run with a ``deadline`` (None: nothing to plan)."""
    at = deadline_at(realtime.deadline, run_start)
    if at is None or (manifest.mode or {}).get("mode", "batch") != "batch" or declined(manifest):
        return None
    return Fallback(at, realtime.rows_per_second, realtime.deadline_margin)


def switch_time(manifest: Manifest, realtime: RealtimeSettings, run_start: datetime) -> float | None:
    """Epoch seconds when the open rows must go real-time to land by the deadline (None: no deadline)."""
    plan = fallback_plan(manifest, realtime, run_start)
    return None if plan is None else plan.switch_at(rows_open(manifest)).timestamp()


def fallback_due(manifest: Manifest, switch_at: float | None, now: float) -> bool:
    """Whether this loop turn switches to real-time: already started by a try, or its time has come
    (never once the switch was declined: over ``max_cost_usd``, see operators/fallback_budget.py)."""
    if manifest.deadline_fallback is not None:
        return switched(manifest)
    return switch_at is not None and now >= switch_at and rows_open(manifest) > 0


def fall_back(run: TaskRun, parser: OutputParser, settings: RunnerSettings, *, plan: Fallback | None,
              poll_interval: float, stop: Callable[[], bool] = lambda: False) -> None:
    """Cancel the open batches, collect what they answered, send every other unanswered row in real time."""
    manifest = run.manifest
    open_ids = manifest.open_batch_ids
    if manifest.deadline_fallback is None:
        left = rows_open(manifest)
        manifest.deadline_fallback = {"switched": True, "at": datetime.now(timezone.utc).isoformat(),
                                      "deadline": plan.at.isoformat() if plan else None,
                                      "cancelled_batches": open_ids, "realtime_rows": None}
        run.store.save(manifest)  # first: from here on no batch is created, a crash resumes the switch
        log.warning("%s", switch_message(plan, len(open_ids), left))
    else:
        log.warning("Resuming the deadline's switch to real-time (started by an earlier try): %d batch(es) "
                    "still open", len(open_ids))
    if open_ids:
        run.cancel(open_ids)  # records them as cancelled by the task first: their unanswered rows come back
        _wait_for_ends(run, open_ids, poll_interval, stop)

    async def collect(batch_run: BatchRun) -> None:
        await batch_run.collect(manifest, parser)

    run.call(collect)
    unanswered = rows_open(manifest)
    log.warning("Deadline fallback: %d row(s) answered by batches are kept; sending %d row(s) in real time",
                _batch_answered(manifest), unanswered)
    if manifest.deadline_fallback.get("realtime_rows") is None:
        manifest.deadline_fallback["realtime_rows"] = unanswered
        run.store.save(manifest)
    send_in_realtime(run, parser, settings)


def _wait_for_ends(run: TaskRun, ids: list[str], poll_interval: float, stop: Callable[[], bool]) -> None:
    """Poll the cancelled batches until each reaches its end (cancelling -> cancelled), through the one
    wait decision (pipeline/waiting.py)."""
    manifest = run.manifest
    rules = WaitRules(tuple(ids), min(poll_interval, CANCEL_POLL_SECONDS))
    event = wait_on_worker(lambda: run.call(lambda batch_run: batch_run.poll(manifest)), rules, stop=stop, log=log)
    if event is None or event.outcome != WaitOutcome.ENDED:
        why = "the task was killed" if event is None else event.message
        raise ProviderError(f"deadline fallback: waiting for the cancelled batch(es) {ids} to end failed ({why}). "
                            f"A retry resumes the switch: it creates no batch and resends no answered row.")


def _batch_answered(manifest: Manifest) -> int:
    return sum(c.counts.get("succeeded", 0) + c.counts.get("failed", 0)
               for c in manifest.chunks if c.path is None and c.is_final)


def switch_message(plan: Fallback | None, batches: int, rows: int) -> str:
    """"deadline 07:00 UTC: 3 batch(es) still open at 06:41 UTC, cancelling them and sending the up to 1,234
    unanswered row(s) in real time (estimated 4 min)": ``rows`` counts the rows of the open batches whole
    (the exact count, less what they answered, is logged once they are collected)."""
    now = datetime.now(timezone.utc).strftime("%H:%M")
    if plan is None:
        return f"deadline: {batches} batch(es) still open at {now} UTC, switching to real-time"
    minutes = max(1, round(plan.realtime_needs(rows).total_seconds() / 60))
    return (f"deadline {plan.at.strftime('%H:%M')} UTC: {batches} batch(es) still open at {now} UTC, cancelling "
            f"them and sending the up to {rows:,} unanswered row(s) in real time (estimated {minutes} min)")
