"""LLMBatchTrigger: one trigger watches every open batch of a task and yields exactly one event."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_llm_batch.pipeline.backend import BatchBackend
from airflow_llm_batch.pipeline.types import BatchProgress
from airflow_llm_batch.pipeline.vanished import progress_or_gone
from airflow_llm_batch.triggers.events import WaitEvent, WaitOutcome
from airflow_llm_batch.triggers.shared_backends import shared_backend

#: HTTP statuses that will not get better by polling again (a 404 on a batch itself is reported as the
#: batch gone, pipeline/vanished.py: the worker sends its rows again)
PERMANENT_STATUSES = frozenset({400, 401, 403, 404})
#: log progress at least this often even when nothing changed (seconds)
HEARTBEAT_SECONDS = 300.0


class LLMBatchTrigger(BaseTrigger):
    """Polls ``batch_ids`` with the provider's async client until all end (or, with
    ``return_on_first_end``, the first one: the worker then sends chunks waiting for admission),
    the deadline passes, or polling fails for good.

    Kwargs hold ids and settings only, never secrets: the client is built from ``conn_id`` in the
    triggerer. Up to ``max_consecutive_errors`` transient failures in a row are retried with
    exponential backoff (capped at the poll interval x 4).

    Example: ``LLMBatchTrigger(provider="openai", conn_id="openai_default", batch_ids=["batch_1"])``
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
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            async with shared_backend(self.provider, self.conn_id, self.provider_options) as backend:
                event = await self._watch(backend)
        except Exception as exc:  # building the client failed: bad connection, missing SDK
            event = WaitEvent(WaitOutcome.ERROR, message=f"cannot poll: {type(exc).__name__}: {exc}")
        yield TriggerEvent(event.to_payload())  # type: ignore[no-untyped-call]  # untyped in Airflow

    async def _watch(self, backend: BatchBackend) -> WaitEvent:
        errors, last_line, last_log = 0, "", 0.0
        progress: list[BatchProgress] = []
        while True:
            try:
                progress = list(await asyncio.gather(*(progress_or_gone(backend, b) for b in self.batch_ids)))
                errors = 0
            except Exception as exc:
                status = getattr(exc, "status_code", None)
                errors += 1
                if status in PERMANENT_STATUSES or errors > self.max_consecutive_errors:
                    return WaitEvent(WaitOutcome.ERROR, progress,
                                     f"polling failed ({errors} in a row): {type(exc).__name__}: {exc}")
                delay = min(self.poll_interval * 4, self.poll_interval * 2 ** (errors - 1))
                self.log.warning("Poll failed (%d/%d), retrying in %.1fs: %s",
                                 errors, self.max_consecutive_errors, delay, type(exc).__name__)
                await asyncio.sleep(delay)
                continue
            line = describe(progress)
            if line != last_line or time.monotonic() - last_log > HEARTBEAT_SECONDS:
                self.log.info("%s", line)
                last_line, last_log = line, time.monotonic()
            ended = [p.state.is_terminal for p in progress]
            if all(ended) or (self.return_on_first_end and any(ended)):
                return WaitEvent(WaitOutcome.ENDED, progress)
            if self.timeout_at is not None and time.time() >= self.timeout_at:
                return WaitEvent(WaitOutcome.TIMEOUT, progress, "the task's timeout passed before the batches ended")
            await asyncio.sleep(self.poll_interval)


def describe(progress: list[BatchProgress]) -> str:
    """One progress line: batches ended, requests done and failed, out of the totals."""
    ended = sum(p.state.is_terminal for p in progress)
    total = sum(p.total for p in progress)
    done = sum(p.completed + p.failed for p in progress)
    failed = sum(p.failed for p in progress)
    states = ",".join(sorted({p.provider_status for p in progress}))
    return f"{ended}/{len(progress)} batches ended; {done}/{total} requests done, {failed} failed [{states}]"
