"""The end of a wait, on the worker: a trigger's event checked on resume, or the worker's own polling
loop (``deferrable=False``). Both follow the decision of pipeline/waiting.py, the one the trigger's
loop uses, with the same tolerance of failed polls.

Example: ``wait = check_event(event, on_timeout=lambda: "left running")`` raises BatchTimeoutError or
ProviderError when the wait did not end with the batches.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from airflow_llm_batch.exceptions import BatchTimeoutError, ProviderError
from airflow_llm_batch.pipeline.types import BatchProgress
from airflow_llm_batch.pipeline.waiting import BatchWait, WaitRules, stuck_message
from airflow_llm_batch.triggers.batch import describe
from airflow_llm_batch.triggers.events import WaitEvent, WaitOutcome


def timeout_at(timeout: timedelta | float | None, start: float) -> float | None:
    if timeout is None:
        return None
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
    return start + seconds


def check_event(event: Any, *, on_timeout: Callable[[], str]) -> WaitEvent:
    """Validate a trigger event; raise the matching error for timeout and polling failures.

    ``on_timeout`` acts on the open batches and says what it did ("cancelled" / "left running").
    """
    return end_of_wait(WaitEvent.from_payload(event), on_timeout=on_timeout)


def end_of_wait(wait: WaitEvent, *, on_timeout: Callable[[], str]) -> WaitEvent:
    """``wait`` when its batches ended; else the error that says why the wait stopped."""
    if wait.outcome == WaitOutcome.TIMEOUT:
        done = on_timeout()
        open_ids = [b.batch_id for b in wait.batches if not b.state.is_terminal]
        raise BatchTimeoutError(f"{wait.message}: {len(open_ids)} open batch(es) {done} ({open_ids}). "
                                f"Finished rows are kept in the workspace; clearing the task re-attaches.")
    if wait.outcome == WaitOutcome.ERROR:
        raise ProviderError(f"waiting for the batches failed: {wait.message}. A retry re-attaches to them.")
    return wait


def wait_on_worker(poll: Callable[[], list[BatchProgress]], rules: WaitRules, *, stop: Callable[[], bool],
                   log: logging.Logger | Any,
                   on_stuck: Callable[[tuple[str, ...]], None] | None = None) -> WaitEvent | None:
    """Poll on the worker until the shared decision ends the wait (the event the trigger would have
    sent), or ``stop()`` says the task was killed (None). Batches the decision calls stuck are logged
    and passed to ``on_stuck`` once each; the wait goes on."""
    wait = BatchWait(rules)
    while True:
        try:
            progress = poll()
        except Exception as exc:  # as in the trigger: a transient failure is retried, with backoff
            decision = wait.failed(exc)
            if decision.outcome is None:
                log.warning("Poll failed (%d/%d), retrying in %.1fs: %s", wait.errors,
                            rules.max_consecutive_errors, decision.delay, type(exc).__name__)
        else:
            log.info("%s", describe(progress))
            decision = wait.polled(progress, time.time())
            if decision.stuck:
                log.warning("Stuck: %s", stuck_message(rules, decision.stuck, time.time()))
                if on_stuck is not None:
                    on_stuck(decision.stuck)
        if stop():
            return None
        if decision.outcome is not None:
            return WaitEvent(decision.outcome, wait.progress, decision.message)
        time.sleep(decision.delay)
