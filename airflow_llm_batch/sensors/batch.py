"""LLMBatchSensor: wait (deferred by default) until every batch of a submitted run has ended."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator

from airflow_llm_batch.operators.failures import fail_without_retry
from airflow_llm_batch.operators.settings import default_deferrable
from airflow_llm_batch.operators.settings_checks import check_seconds
from airflow_llm_batch.operators.split import HandleUser
from airflow_llm_batch.operators.wait import check_event, timeout_at
from airflow_llm_batch.triggers.batch import LLMBatchTrigger, describe


class LLMBatchSensor(HandleUser, BaseSensorOperator):
    """Succeeds when every batch in ``handle`` (from SubmitLLMBatchOperator) has ended.

    Ended means completed, failed, expired or cancelled: the results task decides what the rows
    say. The sensor never cancels a batch (LLMBatchOperator's ``cancel_on_timeout`` has no
    counterpart here). Its parameters share LLMBatchOperator's names.

    Example: ``LLMBatchSensor(task_id="wait", handle=submit.output, poll_interval=60,
    timeout=timedelta(hours=26))``

    :param handle: the return value (XCom) of SubmitLLMBatchOperator (templated)
    :param deferrable: wait in the triggerer; default ``[operators] default_deferrable`` when the
        deployment sets it, else True. With False the sensor pokes from the worker (``mode`` applies)
    :param poll_interval: seconds between polls of the batches (also the ``poke_interval`` when not
        deferrable, unless ``poke_interval`` is given)
    :param timeout: the standard sensor timeout (seconds or timedelta): the task fails after waiting
        this long in this try (default ``[sensors] default_timeout``, 7 days); open batches are left running
    :param wait_timeout: former name of ``timeout``, still accepted
    """

    template_fields: Sequence[str] = ("handle",)

    def __init__(self, *, deferrable: bool | None = None, poll_interval: float = 30.0,
                 wait_timeout: timedelta | float | None = None, **kwargs: Any) -> None:
        if wait_timeout is not None:  # the former name of the standard ``timeout``
            check_seconds(str(kwargs.get("task_id")), "wait_timeout", wait_timeout)
            kwargs.setdefault("timeout", wait_timeout)
        if isinstance(kwargs.get("timeout"), timedelta):
            kwargs["timeout"] = kwargs["timeout"].total_seconds()
        kwargs.setdefault("poke_interval", poll_interval)
        super().__init__(**kwargs)
        check_seconds(self.task_id, "poll_interval", poll_interval)
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval = poll_interval

    @property
    def wait_timeout(self) -> float:
        """The former name of ``timeout``."""
        return float(self.timeout)

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
                                    timeout_at=timeout_at(self.timeout, time.time()) if self.timeout else None),
            method_name="execute_complete",
        )

    @fail_without_retry
    def execute_complete(self, context: Any, event: Any = None) -> None:
        run = self.open_run()
        wait = check_event(event, on_timeout=lambda: "left running (the sensor never cancels)")
        run.records().record_progress(run.manifest, wait.batches)
        self.log.info("%s", describe(wait.batches))
