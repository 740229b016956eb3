"""LLMBatchOperator: rows in, results landed, at batch price, without holding a worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_llm_batch.exceptions import InvalidInputError, ProviderError
from airflow_llm_batch.operators.failures import fail_without_retry
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
from airflow_llm_batch.operators.settings_checks import check_settings
from airflow_llm_batch.pipeline.manifest import ChunkState, Manifest
from airflow_llm_batch.pipeline.policy import OPTIONAL_RETRY_CODES, RETRYABLE_CODES, Admission, RetryPolicy
from airflow_llm_batch.pipeline.run import BatchRun
from airflow_llm_batch.sinks import LandingContext, open_sink
from airflow_llm_batch.sinks.xcom import DEFAULT_MAX_XCOM_ROWS, check_fits
from airflow_llm_batch.triggers.batch import LLMBatchTrigger, describe


class LLMBatchOperator(RequestOptions):
    """Render a prompt over every row, run it through a provider batch API, and land the answers.

    The task prepares and validates every row (nothing is paid if any row is bad), records an intent
    in its workspace before each batch is created, defers to the triggerer while the batches run,
    then joins the answers to the rows by custom_id, resubmits rows whose failure is retryable, and
    writes one result per row to ``destination``. A retry or a cleared task re-attaches to its
    batches instead of paying again.

    Example::

        LLMBatchOperator(
            task_id="triage",
            provider="openai", conn_id="openai_default", model="gpt-4o-mini",
            rows="gs://bucket/tickets/{{ ds }}.jsonl", key="ticket_id",
            prompt="Classify this support ticket:\\n{{ row.subject }}\\n{{ row.body }}",
            response_format=Triage,
            destination="gs://bucket/triage/{{ ds }}.jsonl",
        )

    :param destination: where results land: an object storage URI (``file://``, ``gs://``, ``s3://``;
        JSONL, or Parquet with a ``.parquet`` suffix), ``bq://project.dataset.table`` (a BigQuery load
        job + MERGE per run; options as ``?mode=append``), or a Sink object; None returns them in XCom
        (small runs only)
    :param deferrable: wait in the triggerer (default) or poll on the worker
    :param poll_interval: seconds between polls of the batches
    :param timeout: give up waiting after this long from the first submit (the batches are cancelled
        if ``cancel_on_timeout``)
    :param max_attempts: attempts per row for retryable failures (rate limit, server error, expiry...)
    :param retry_on: extra codes to retry: "invalid_output", "truncated", "batch_cancelled"
    :param enqueued_token_budget: per-model enqueued-token limit: chunks are planned under it and sent
        only as in-flight batches end (OpenAI's ENQUEUED TOKEN LIMIT)
    :param max_open_batches: cap on this task's batches in flight at once
    :param min_success_rate: fail the task (after landing) if fewer rows succeed; a run where every row
        failed always fails
    """

    template_fields: Sequence[str] = (*RequestOptions.template_fields, "destination")
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        destination: Any = None,
        deferrable: bool = True,
        poll_interval: float = 30.0,
        timeout: timedelta | float | None = None,
        cancel_on_timeout: bool = True,
        cancel_on_kill: bool = True,
        max_attempts: int = 3,
        retry_on: Iterable[str] = (),
        enqueued_token_budget: int | None = None,
        max_open_batches: int | None = None,
        min_success_rate: float | None = None,
        xcom_max_rows: int = DEFAULT_MAX_XCOM_ROWS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_settings(self.task_id, poll_interval=poll_interval, timeout=timeout,
                       min_success_rate=min_success_rate, max_attempts=max_attempts)
        self.destination = destination
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.wait_timeout = timeout
        self.cancel_on_timeout = cancel_on_timeout
        self.cancel_on_kill = cancel_on_kill
        unknown = set(retry_on) - OPTIONAL_RETRY_CODES - RETRYABLE_CODES
        if unknown:
            raise ValueError(f"retry_on: unknown codes {sorted(unknown)}; choose from {sorted(OPTIONAL_RETRY_CODES)}")
        self.policy = RetryPolicy(max_attempts=max_attempts, retry_codes=RETRYABLE_CODES | frozenset(retry_on))
        self.admission = Admission(token_budget=enqueued_token_budget, max_open_batches=max_open_batches)
        self.min_success_rate = min_success_rate
        self.xcom_max_rows = xcom_max_rows
        self._access: ProviderAccess | None = None
        self._context: Any = None
        self._killed = False

    # -- the task ----------------------------------------------------------------------------------
    @fail_without_retry
    def execute(self, context: Any) -> Any:
        self._context = context
        access = self._provider_access()
        run = self._run(access, context)
        manifest = self.prepare_manifest(run, context)
        if self.estimate_only:
            self.log.info("dry_run: nothing submitted")
            return self.dry_run_summary(manifest)
        try:
            if self.destination:
                open_sink(self.destination).check(self._landing(context))
            else:
                check_fits(manifest.total_rows, self.xcom_max_rows)
        except InvalidInputError as exc:  # a retry cannot fix a wrong destination: fail for good
            raise AirflowFailException(f"InvalidInputError: {exc}") from exc
        return self._advance(access, context, manifest)

    @fail_without_retry
    def execute_complete(self, context: Any, event: Any = None) -> Any:
        self._context = context
        access = self._provider_access()
        run = self._run(access, context)
        manifest = self._load(run)
        wait = check_event(event, on_timeout=lambda: self._cancel(access, context, manifest, self.cancel_on_timeout))
        run.record_progress(manifest, wait.batches)
        return self._advance(access, context, manifest)

    def on_kill(self) -> None:
        """Cancel open batches (``cancel_on_kill``) and remember that we did: if the task runs again
        (a clear), their unanswered rows are resent, and answered rows are kept."""
        self._killed = True
        if not self.cancel_on_kill or self._context is None:
            return
        access = self._provider_access()
        manifest = self._run(access, self._context).store.load()
        if manifest is not None:
            self._cancel(access, self._context, manifest, True)

    # -- the loop: collect what ended, send what waits, then wait or land ---------------------------
    def _advance(self, access: ProviderAccess, context: Any, manifest: Manifest) -> Any:
        parser = parser_for(self.response_format)
        deadline = self._deadline(access, context, manifest)
        while True:
            if self._killed:
                raise AirflowException("the task was killed: stopping before landing (the next try re-attaches)")
            async def step(run: BatchRun) -> None:
                await run.collect(manifest, parser)
                run.finalize(manifest, parser)
                if manifest.breaker and manifest.open_batch_ids:
                    await asyncio.gather(*(run.backend.cancel(b) for b in manifest.open_batch_ids))
                await run.submit(manifest)

            try:
                self._with_run(access, context, step)
            except InvalidInputError as exc:  # e.g. one row over the provider's limit: a retry cannot fix it
                raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
            context["ti"].xcom_push(key="batch_ids", value=manifest.batch_ids)
            if manifest.is_done:
                return self._land(access, context, manifest)
            waiting = any(c.state == ChunkState.PREPARED for c in manifest.chunks)
            if self.deferrable:
                self.defer(
                    trigger=LLMBatchTrigger(provider=self.provider, conn_id=access.conn_id,
                                            provider_options=access.options,
                                            batch_ids=manifest.open_batch_ids, poll_interval=self.poll_interval,
                                            timeout_at=deadline, return_on_first_end=waiting,
                                            run_folder=str(run_folder(self.workspace, context)),
                                            cancel_on_kill=self.cancel_on_kill),
                    method_name="execute_complete",
                )
            self._wait_on_worker(access, context, manifest, deadline, waiting)

    def _deadline(self, access: ProviderAccess, context: Any, manifest: Manifest) -> float | None:
        """``timeout`` counts from this try's first wait: a cleared or retried task gets a fresh one."""
        if self.wait_timeout is None:
            return None
        try_number = int(getattr(context["ti"], "try_number", 0) or 0)
        if manifest.deadline is None or manifest.deadline.get("try") != try_number:
            manifest.deadline = {"try": try_number, "at": timeout_at(self.wait_timeout, time.time())}
            self._run(access, context).store.save(manifest)
        return float(manifest.deadline["at"])

    def _land(self, access: ProviderAccess, context: Any, manifest: Manifest) -> Any:
        price, taken_on = self.price()
        summary = land(self._run(access, context), manifest, landing=self._landing(context),
                       destination=self.destination, provider=self.provider,
                       min_success_rate=self.min_success_rate, price=price, prices_taken_on=taken_on)
        if manifest.breaker:
            b = manifest.breaker
            raise ProviderError(
                f"circuit breaker: {b['rows']} of {b['of']} rows of batch {b['batch_id']} failed with "
                f"{b['code']} ({b['message']}); nothing more was submitted. Results were landed with every "
                f"row's reason. Fix the connection/account, then clear the task."
            )
        return summary

    def _wait_on_worker(self, access: ProviderAccess, context: Any, manifest: Manifest,
                        deadline: float | None, any_end: bool) -> None:
        """deferrable=False: poll from the worker (holds the slot; for setups without a triggerer)."""
        watched = set(manifest.open_batch_ids)
        while True:
            progress = self._with_run(access, context, lambda run: run.poll(manifest))
            self.log.info("%s", describe(progress))
            still_open = watched & set(manifest.open_batch_ids)
            if not still_open or (any_end and still_open != watched) or self._killed:
                return
            if deadline is not None and time.time() >= deadline:
                check_event({"version": 1, "status": "timeout", "batches": [p.to_dict() for p in progress],
                             "message": "the task's timeout passed before the batches ended"},
                            on_timeout=lambda: self._cancel(access, context, manifest, self.cancel_on_timeout))
            time.sleep(self.poll_interval)

    def _cancel(self, access: ProviderAccess, context: Any, manifest: Manifest, enabled: bool) -> str:
        ids = manifest.open_batch_ids
        if not enabled or not ids:
            self.log.info("Leaving %d open batch(es) running: %s", len(ids), ids)
            return "left running (cancel_on_timeout=False)" if ids else "none open"

        async def _cancel(run: BatchRun) -> None:
            run.remember_cancelled(ids)  # first: a later try resends their unanswered rows
            await asyncio.gather(*(run.backend.cancel(b) for b in ids))

        self._with_run(access, context, _cancel)
        self.log.warning("Cancelled %d open batch(es): %s", len(ids), ids)
        return "cancelled"

    # -- plumbing ----------------------------------------------------------------------------------
    def _run(self, access: ProviderAccess, context: Any) -> BatchRun:
        return access.offline_run(run_folder(self.workspace, context), run_tags(context),
                                  policy=self.policy, admission=self.admission, cache=self.answer_cache())

    def _with_run(self, access: ProviderAccess, context: Any, work: Any) -> Any:
        return access.run(run_folder(self.workspace, context), run_tags(context), work,
                          policy=self.policy, admission=self.admission, cache=self.answer_cache())

    def _landing(self, context: Any) -> LandingContext:
        return landing_context(context, parser_for(self.response_format), self.provider, self.model)

    def _provider_access(self) -> ProviderAccess:
        if self._access is None:
            self._access = ProviderAccess.resolve(self.provider, self.conn_id, self.provider_options)
        return self._access

    def _load(self, run: BatchRun) -> Manifest:
        manifest = run.store.load()
        if manifest is None:
            raise FileNotFoundError(f"no manifest at {run.store.path}: the workspace was removed while the "
                                    f"task was deferred; its batches are {self.task_id}'s XCom 'batch_ids'")
        return manifest
