"""LLMBatchOperator: rows in, results landed, at batch price, without holding a worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator

from airflow_llm_batch.operators.request_options import RequestOptions
from airflow_llm_batch.operators.run_context import (
    ProviderAccess,
    check_event,
    land,
    landing_context,
    parser_for,
    run_folder,
    run_tags,
    timeout_at,
)
from airflow_llm_batch.pipeline.manifest import Manifest
from airflow_llm_batch.pipeline.run import BatchRun
from airflow_llm_batch.sinks import LandingContext, open_sink
from airflow_llm_batch.sinks.xcom import DEFAULT_MAX_XCOM_ROWS, check_fits
from airflow_llm_batch.triggers.batch import LLMBatchTrigger, describe


class LLMBatchOperator(RequestOptions, BaseOperator):
    """Render a prompt over every row, run it through a provider batch API, and land the answers.

    The task prepares and validates every row (nothing is paid if any row is bad), records an intent
    in its workspace before each batch is created, defers to the triggerer while the batches run,
    then joins the answers to the rows by custom_id and writes them to ``destination``. A retry or a
    cleared task re-attaches to its batches instead of paying again.

    Example::

        LLMBatchOperator(
            task_id="triage",
            provider="openai", conn_id="openai_default", model="gpt-4o-mini",
            rows="gs://bucket/tickets/{{ ds }}.jsonl", key="ticket_id",
            prompt="Classify this support ticket:\\n{{ row.subject }}\\n{{ row.body }}",
            response_format=Triage,
            destination="gs://bucket/triage/{{ ds }}.jsonl",
        )

    :param destination: object storage URI for the results JSONL; None returns them in XCom (small runs)
    :param deferrable: wait in the triggerer (default) or poll on the worker
    :param timeout: give up waiting after this long (the batches are cancelled if ``cancel_on_timeout``)
    :param min_success_rate: fail the task (after landing) if fewer rows succeed; a run where every row
        failed always fails
    """

    template_fields: Sequence[str] = (*RequestOptions.template_fields, "destination")
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        destination: str | None = None,
        deferrable: bool = True,
        poll_interval: float = 30.0,
        timeout: timedelta | float | None = None,
        cancel_on_timeout: bool = True,
        cancel_on_kill: bool = True,
        min_success_rate: float | None = None,
        xcom_max_rows: int = DEFAULT_MAX_XCOM_ROWS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.destination = destination
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.wait_timeout = timeout
        self.cancel_on_timeout = cancel_on_timeout
        self.cancel_on_kill = cancel_on_kill
        self.min_success_rate = min_success_rate
        self.xcom_max_rows = xcom_max_rows
        self._access: ProviderAccess | None = None
        self._context: Any = None

    # -- the task ----------------------------------------------------------------------------------
    def execute(self, context: Any) -> Any:
        self._context = context
        access = self._provider_access()
        folder, tags = run_folder(self.workspace, context), run_tags(context)
        manifest = self.prepare_manifest(access.offline_run(folder, tags), context)
        if self.destination:
            open_sink(self.destination).check(self._landing(context))
        else:
            check_fits(manifest.total_rows, self.xcom_max_rows)
        access.run(folder, tags, lambda run: run.submit(manifest))
        context["ti"].xcom_push(key="batch_ids", value=manifest.batch_ids)
        deadline = timeout_at(self.wait_timeout, manifest.created_at)
        if manifest.open_batch_ids and self.deferrable:
            self.defer(
                trigger=LLMBatchTrigger(provider=self.provider, conn_id=access.conn_id,
                                        batch_ids=manifest.open_batch_ids,
                                        poll_interval=self.poll_interval, timeout_at=deadline),
                method_name="execute_complete",
            )
        if manifest.open_batch_ids:
            self._wait_on_worker(access, folder, tags, manifest, deadline)
        return self._finish(access, folder, tags, manifest)

    def execute_complete(self, context: Any, event: Any = None) -> Any:
        self._context = context
        access = self._provider_access()
        folder, tags = run_folder(self.workspace, context), run_tags(context)
        run = access.offline_run(folder, tags)
        manifest = self._load(run)
        wait = check_event(event, on_timeout=lambda: self._cancel_on(access, folder, tags, manifest,
                                                                       self.cancel_on_timeout))
        run.record_progress(manifest, wait.batches)
        return self._finish(access, folder, tags, manifest)

    def on_kill(self) -> None:
        if not self.cancel_on_kill or self._context is None:
            return
        access = self._provider_access()
        folder, tags = run_folder(self.workspace, self._context), run_tags(self._context)
        manifest = access.offline_run(folder, tags).store.load()
        if manifest is not None:
            self._cancel_on(access, folder, tags, manifest, True)

    # -- steps -------------------------------------------------------------------------------------
    def _finish(self, access: ProviderAccess, folder: Any, tags: dict[str, str], manifest: Manifest) -> Any:
        parser = parser_for(self.response_format)
        access.run(folder, tags, lambda run: run.collect(manifest, parser))
        run = access.offline_run(folder, tags)
        return land(run, manifest, landing=self._landing(self._context), destination=self.destination,
                    provider=self.provider, min_success_rate=self.min_success_rate)

    def _landing(self, context: Any) -> LandingContext:
        return landing_context(context, parser_for(self.response_format), self.provider, self.model)

    def _wait_on_worker(self, access: ProviderAccess, folder: Any, tags: dict[str, str],
                        manifest: Manifest, deadline: float | None) -> None:
        """deferrable=False: poll from the worker (holds the slot; for setups without a triggerer)."""
        while manifest.open_batch_ids:
            progress = access.run(folder, tags, lambda run: run.poll(manifest))
            self.log.info("%s", describe(progress))
            if not manifest.open_batch_ids:
                return
            if deadline is not None and time.time() >= deadline:
                check_event({"version": 1, "status": "timeout", "batches": [p.to_dict() for p in progress],
                             "message": "the task's timeout passed before the batches ended"},
                            on_timeout=lambda: self._cancel_on(access, folder, tags, manifest,
                                                               self.cancel_on_timeout))
            time.sleep(self.poll_interval)

    def _cancel_on(self, access: ProviderAccess, folder: Any, tags: dict[str, str], manifest: Manifest,
                   enabled: bool) -> None:
        ids = manifest.open_batch_ids
        if not enabled or not ids:
            self.log.info("Leaving %d open batch(es) running: %s", len(ids), ids)
            return

        async def _cancel(run: BatchRun) -> None:
            await asyncio.gather(*(run.backend.cancel(b) for b in ids))

        access.run(folder, tags, _cancel)
        self.log.warning("Cancelled %d open batch(es): %s", len(ids), ids)

    def _provider_access(self) -> ProviderAccess:
        if self._access is None:
            self._access = ProviderAccess.resolve(self.provider, self.conn_id)
        return self._access

    def _load(self, run: BatchRun) -> Manifest:
        manifest = run.store.load()
        if manifest is None:
            raise FileNotFoundError(f"no manifest at {run.store.path}: the workspace was removed while the "
                                    f"task was deferred; its batches are {self.task_id}'s XCom 'batch_ids'")
        return manifest
