"""LLMBatchTrigger: one trigger watches every open batch of a task and yields exactly one event."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_llm_batch.pipeline.run import BatchRun
from airflow_llm_batch.pipeline.types import BatchProgress
from airflow_llm_batch.pipeline.vanished import Polls, progress_or_gone
from airflow_llm_batch.pipeline.waiting import BatchWait, WaitRules, stuck_message, stuck_rules
from airflow_llm_batch.sources.rows import to_path
from airflow_llm_batch.triggers.events import WaitEvent, WaitOutcome
from airflow_llm_batch.triggers.shared_backends import shared_backend, shared_poller

#: log progress at least this often even when nothing changed (seconds)
HEARTBEAT_SECONDS = 300.0
#: a triggerer starting many triggers at once (a restart) spreads their first polls over up to this (seconds)
FIRST_POLL_SPREAD_SECONDS = 2.0
#: progress lines per second written by all the triggers of a triggerer together (a line costs ~5 ms through
#: structlog: a thousand triggers starting at once would spend 5 CPU-s on their first lines); a line over
#: the budget waits for a later poll
PROGRESS_LINES_PER_SECOND = 5.0
#: on_kill's own bound (seconds), inside Airflow's ``[triggerer] on_kill_timeout`` (30 s by default)
ON_KILL_SECONDS = 20.0


class LLMBatchTrigger(BaseTrigger):
    """Polls ``batch_ids`` with the provider's async client until all end (or, with
    ``return_on_first_end``, the first one: the worker then sends chunks waiting for admission),
    the deadline passes, or polling fails for good.

    Kwargs hold ids and settings only, never secrets: the client is built from ``conn_id`` in the
    triggerer. Up to ``max_consecutive_errors`` transient failures in a row are retried with
    exponential backoff (capped at the poll interval x 4).

    When a user marks the deferred task failed or success, or clears it, Airflow calls
    :meth:`on_kill`: with ``cancel_on_kill`` the batches still open are recorded as cancelled by the
    task in ``run_folder`` (so the next try resends only their unanswered rows), then cancelled.
    ``LLMBatchSensor`` leaves ``cancel_on_kill`` off: its batches belong to the submit task.

    Example: ``LLMBatchTrigger(provider="openai", conn_id="openai_default", batch_ids=["batch_1"])``

    :param provider: "openai", "azure_openai", "anthropic", "gemini" or "vertex"
    :param conn_id: the Airflow connection the client is built from (in the triggerer)
    :param batch_ids: the batches to watch
    :param poll_interval: seconds between polls
    :param timeout_at: epoch seconds after which the trigger ends with a timeout event (None: no limit)
    :param max_consecutive_errors: failed polls in a row tolerated before an error event
    :param return_on_first_end: end as soon as one batch ends (the task has chunks waiting to be sent)
    :param provider_options: the task's overrides of the connection's extras (never secrets)
    :param run_folder: the task run's folder, where :meth:`on_kill` records the batches it cancels
    :param cancel_on_kill: cancel the open batches when the task is marked failed/success or cleared
    :param switch_at: epoch seconds when the deadline's real-time fallback is due: the trigger ends then
        with a ``deadline`` event (the worker cancels the batches, keeps their answered rows and sends
        the rest in real time); None: no deadline
    :param stuck: the stuck-batch alert: ``warn_after`` seconds, when each batch opened, the batches
        already warned about, and whether to hand the alert back to the worker (``stop``)
    """

    def __init__(
        self,
        *,
        provider: str,
        conn_id: str,
        batch_ids: list[str],
        poll_interval: float = 30.0,
        timeout_at: float | None = None,
        max_consecutive_errors: int = 5,
        return_on_first_end: bool = False,
        provider_options: dict[str, Any] | None = None,
        run_folder: str | None = None,
        cancel_on_kill: bool = False,
        stuck: dict[str, Any] | None = None,
        switch_at: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow's BaseTrigger is untyped
        self.provider = provider
        self.conn_id = conn_id
        self.batch_ids = list(batch_ids)
        self.poll_interval = float(poll_interval)
        self.timeout_at = timeout_at
        self.max_consecutive_errors = max_consecutive_errors
        self.return_on_first_end = return_on_first_end
        self.provider_options = dict(provider_options or {})  # non-secret (checked by the operator)
        self.run_folder = run_folder  # the task run's workspace folder (a URI): where on_kill records
        self.cancel_on_kill = cancel_on_kill
        #: the stuck-batch alert: {"warn_after": s, "opened_at": {id: epoch}, "warned": [ids], "stop": bool}
        self.stuck = dict(stuck or {})
        self.switch_at = switch_at
        self._ended: set[str] = set()  # batches seen ended by the last poll: on_kill leaves them alone

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "provider": self.provider,
                "conn_id": self.conn_id,
                "batch_ids": self.batch_ids,
                "poll_interval": self.poll_interval,
                "timeout_at": self.timeout_at,
                "max_consecutive_errors": self.max_consecutive_errors,
                "return_on_first_end": self.return_on_first_end,
                "provider_options": self.provider_options,
                "run_folder": self.run_folder,
                "cancel_on_kill": self.cancel_on_kill,
                "stuck": self.stuck,
                "switch_at": self.switch_at,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            async with shared_poller(self.provider, self.conn_id, self.provider_options) as poller:
                await asyncio.sleep(first_poll_delay(self.poll_interval))
                event = await self._watch(poller)
        except Exception as exc:  # building the client failed: bad connection, missing SDK
            event = WaitEvent(WaitOutcome.ERROR, message=f"cannot poll: {type(exc).__name__}: {exc}")
        yield TriggerEvent(event.to_payload())  # type: ignore[no-untyped-call]  # untyped in Airflow

    async def _watch(self, poller: Polls) -> WaitEvent:
        """Poll until the shared decision (pipeline/waiting.py) ends the wait."""
        wait = BatchWait(WaitRules(tuple(self.batch_ids), self.poll_interval, self.timeout_at,
                                   self.return_on_first_end, self.max_consecutive_errors, switch_at=self.switch_at,
                                   **stuck_rules(self.stuck)))
        lines = ProgressLines()
        while True:
            try:
                progress = list(await asyncio.gather(*(progress_or_gone(poller, b) for b in self.batch_ids)))
            except Exception as exc:
                decision = wait.failed(exc)
                if decision.outcome is None:
                    self.log.warning("Poll failed (%d/%d), retrying in %.1fs: %s",
                                     wait.errors, self.max_consecutive_errors, decision.delay, type(exc).__name__)
            else:
                decision = wait.polled(progress, time.time())
                self._ended = set(wait.ended)
                line = lines.due(progress)
                if line:
                    self.log.info("%s", line)
                if decision.stuck:
                    self.log.warning("Stuck: %s", stuck_message(wait.rules, decision.stuck, time.time()))
            if decision.outcome is not None:
                return WaitEvent(decision.outcome, wait.progress, decision.message, decision.stuck,
                                 tuple(sorted(wait.warned)))
            await asyncio.sleep(decision.delay)

    async def on_kill(self) -> None:
        """The user marked the deferred task failed/success or cleared it (not a triggerer restart):
        with ``cancel_on_kill``, record the open batches as cancelled by the task, then cancel them,
        within ``ON_KILL_SECONDS``. Failures are logged, never raised (Airflow only logs them too)."""
        open_ids = [b for b in self.batch_ids if b not in self._ended]
        if not self.cancel_on_kill or not open_ids:
            self.log.info("Task killed: leaving %d open batch(es) running (cancel_on_kill=%s): %s",
                          len(open_ids), self.cancel_on_kill, open_ids)
            return
        try:
            async with asyncio.timeout(ON_KILL_SECONDS):
                await self._cancel(open_ids)
        except TimeoutError:
            self.log.error("Task killed: cancelling %d batch(es) took over %.0fs; check them at the provider: %s",
                           len(open_ids), ON_KILL_SECONDS, open_ids)
        except Exception as exc:
            self.log.error("Task killed: cancelling %d batch(es) failed (%s: %s); check them at the provider: %s",
                           len(open_ids), type(exc).__name__, exc, open_ids)

    async def _cancel(self, ids: list[str]) -> None:
        async with shared_backend(self.provider, self.conn_id, self.provider_options) as backend:
            if self.run_folder:
                try:  # first: a later try resends the unanswered rows of the batches we cancel
                    # in a thread: a ``conn_id@`` folder reads its connection (and opens its store) there
                    folder = await asyncio.to_thread(to_path, self.run_folder)
                    await asyncio.to_thread(BatchRun(folder, backend, tags={}).remember_cancelled, ids)
                except Exception as exc:  # the user asked to stop paying: cancel anyway
                    self.log.warning("Could not record the cancelled batches in %s (%s); the next try reports "
                                     "their unanswered rows as batch_cancelled", self.run_folder, type(exc).__name__)
            outcomes = await asyncio.gather(*(backend.cancel(b) for b in ids), return_exceptions=True)
        failed = {b: type(o).__name__ for b, o in zip(ids, outcomes, strict=True) if isinstance(o, BaseException)}
        self.log.warning("Task killed: cancelled %d open batch(es) %s%s", len(ids) - len(failed),
                         [b for b in ids if b not in failed], f"; cancel failed for {failed}" if failed else "")


class LineBudget:
    """A token bucket shared by the triggers of a process: ``take()`` is True when a line may be written now."""

    def __init__(self, per_second: float, burst: float | None = None) -> None:
        self.per_second = per_second
        self.burst = burst if burst is not None else per_second
        self.tokens = self.burst
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.per_second)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


LINES = LineBudget(PROGRESS_LINES_PER_SECOND)


class ProgressLines:
    """When one trigger writes its progress line: when it changed (or every ``HEARTBEAT_SECONDS``), within
    the triggerer's shared :data:`LINES` budget. The first poll of batches where nothing happened yet
    writes nothing (the task logged the submission): a triggerer restarting with a thousand triggers
    would otherwise write a thousand lines at once."""

    def __init__(self) -> None:
        self.last_line: str | None = None
        self.last_log = time.monotonic()

    def due(self, progress: list[BatchProgress]) -> str | None:
        line = describe(progress)
        if self.last_line is None and not any(p.completed or p.failed or p.state.is_terminal for p in progress):
            self.last_line = line
        if (line == self.last_line and time.monotonic() - self.last_log <= HEARTBEAT_SECONDS) or not LINES.take():
            return None
        self.last_line, self.last_log = line, time.monotonic()
        return line


def first_poll_delay(poll_interval: float) -> float:
    """A random wait before a trigger's first poll, so triggers started together do not poll in one burst."""
    return random.uniform(0.0, min(poll_interval, FIRST_POLL_SPREAD_SECONDS))


def describe(progress: list[BatchProgress]) -> str:
    """One progress line: batches ended, requests done and failed, out of the totals."""
    ended = sum(p.state.is_terminal for p in progress)
    total = sum(p.total for p in progress)
    done = sum(p.completed + p.failed for p in progress)
    failed = sum(p.failed for p in progress)
    states = ",".join(sorted({p.provider_status for p in progress}))
    return f"{ended}/{len(progress)} batches ended; {done}/{total} requests done, {failed} failed [{states}]"
