"""LLMBatchSensor: wait (deferred by default) until every batch of a submitted run has ended."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator

from airflow_llm_batch.operators.failures import fail_without_retry
from airflow_llm_batch.operators.settings_checks import check_seconds
from airflow_llm_batch.operators.split import HandleUser
from airflow_llm_batch.operators.wait import check_event, timeout_at
from airflow_llm_batch.triggers.batch import LLMBatchTrigger, describe


class LLMBatchSensor(HandleUser, BaseSensorOperator):
    """Succeeds when every batch in ``handle`` (from SubmitLLMBatchOperator) has ended.

    Ended means completed, failed, expired or cancelled: the results task decides what the rows
    say. With ``deferrable=True`` (default) the wait happens in the triggerer.

    Example: ``LLMBatchSensor(task_id="wait", handle=submit.output, poll_interval=60)``
    """

    template_fields: Sequence[str] = ("handle",)

    def __init__(self, *, deferrable: bool = True, poll_interval: float = 30.0,
                 wait_timeout: timedelta | float | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("poke_interval", poll_interval)
        super().__init__(**kwargs)
        check_seconds(self.task_id, "poll_interval", poll_interval)
        check_seconds(self.task_id, "wait_timeout", wait_timeout, optional=True)
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout

    def poke(self, context: Any) -> bool:
        run = self.open_run()
        progress = run.call(lambda batch_run: batch_run.poll(run.manifest))
        self.log.info("%s", describe(progress))
        return not run.manifest.open_batch_ids

    @fail_without_retry
    def execute(self, context: Any) -> None:
        if not self.deferrable:
            super().execute(context)
            return
        if self.poke(context):
            return
        run = self.open_run()
        self.defer(
            trigger=LLMBatchTrigger(provider=run.access.provider, conn_id=run.access.conn_id,
                                    provider_options=run.access.options,
                                    batch_ids=run.manifest.open_batch_ids, poll_interval=self.poll_interval,
                                    timeout_at=timeout_at(self.wait_timeout, time.time())),
            method_name="execute_complete",
        )

    @fail_without_retry
    def execute_complete(self, context: Any, event: Any = None) -> None:
        run = self.open_run()
        wait = check_event(event, on_timeout=lambda: "left running (the sensor never cancels)")
        run.records().record_progress(run.manifest, wait.batches)
        self.log.info("%s", describe(wait.batches))
