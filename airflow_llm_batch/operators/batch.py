"""LLMBatchOperator: rows in, results landed, at batch price, without holding a worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_llm_batch.exceptions import InvalidInputError, ProviderError, TooManyFailuresError
from airflow_llm_batch.operators.alerts import (
    DEFAULT_WARN_AFTER,
    StuckCallback,
    call_on_stuck,
    lost_rate_message,
    stuck_alert,
    stuck_info,
    success_rate_lost,
    warn_after_seconds,
)
from airflow_llm_batch.operators.deadline_fallback import fall_back, fallback_due, fallback_plan, switch_time
from airflow_llm_batch.operators.failures import fail_without_retry
from airflow_llm_batch.operators.fallback_budget import fallback_affordable
from airflow_llm_batch.operators.landing import collect_price, land, landing_context
from airflow_llm_batch.operators.links import BatchConsoleLink, RunReportLink
from airflow_llm_batch.operators.paths import run_folder, run_tags
from airflow_llm_batch.operators.realtime_mode import check_realtime_budget, decide, run_start, send_in_realtime
from airflow_llm_batch.operators.request_options import RequestOptions, dry_run_summary, with_request_params_doc
from airflow_llm_batch.operators.run_context import ProviderAccess, TaskRun
from airflow_llm_batch.operators.settings import RealtimeSettings, RequestSettings, WaitSettings, default_deferrable
from airflow_llm_batch.operators.wait import check_event, end_of_wait, timeout_at, wait_on_worker
from airflow_llm_batch.pipeline.manifest import ChunkState, Manifest
from airflow_llm_batch.pipeline.parsing import OutputParser
from airflow_llm_batch.pipeline.run import BatchRun
from airflow_llm_batch.pipeline.waiting import WaitRules, stuck_rules
from airflow_llm_batch.realtime.deadline import DEFAULT_MARGIN, TYPICAL_LATENCY_SECONDS
from airflow_llm_batch.realtime.decision import AutoRule, Mode
from airflow_llm_batch.sinks import LandingContext, open_sink
from airflow_llm_batch.sinks.xcom import DEFAULT_MAX_XCOM_ROWS, check_fits
from airflow_llm_batch.triggers.batch import LLMBatchTrigger

T = TypeVar("T")

#: why execute_complete finds no manifest
REMOVED_WHILE_DEFERRED = "the workspace was removed while the task was deferred"


@dataclass(kw_only=True)
class OperatorTry(TaskRun):
    """One try of an LLMBatchOperator task: the run (folder, store, provider) with this try's
    settings and Airflow context, built once when the try starts."""

    context: Any
    request: RequestSettings
    wait: WaitSettings
    realtime: RealtimeSettings

    @property
    def landing(self) -> LandingContext:
        return landing_context(self.context, self.request.parser, self.request.provider, self.request.model)

    def call(self, work: Callable[[BatchRun], Awaitable[T]]) -> T:
        """:meth:`TaskRun.call`, with the run's price on its collector: each chunk's results are written
        priced, as landing writes them (landing then copies them)."""
        price = collect_price(self.request.price()[0], self.request.carry_columns)

        async def priced(batch_run: BatchRun) -> T:
            batch_run.collector.price = price
            return await work(batch_run)

        return super().call(priced)


@with_request_params_doc
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
    :param deferrable: wait in the triggerer or poll on the worker; default ``[operators]
        default_deferrable`` when the deployment sets it in its environment, else True
    :param poll_interval: seconds between polls of the batches
    :param timeout: give up waiting after this long, counted from each try's first wait (a retried or
        cleared task gets a fresh one); the batches are cancelled if ``cancel_on_timeout``
    :param cancel_on_timeout: cancel the open batches when ``timeout`` passes (else leave them running)
    :param cancel_on_kill: cancel the open batches when the task is marked failed/success or cleared
        (a later try resends their unanswered rows and keeps the answered ones)
    :param max_attempts: attempts per row for retryable failures (rate limit, server error, expiry...)
    :param retry_on: extra codes to retry: "invalid_output", "truncated", "batch_cancelled"
    :param enqueued_token_budget: per-model enqueued-token limit: chunks are planned under it and sent
        only as in-flight batches end (OpenAI's ENQUEUED TOKEN LIMIT)
    :param max_open_batches: cap on this task's batches in flight at once
    :param min_success_rate: fail the task (after landing) if fewer rows succeed; a run where every row
        failed always fails. Checked as each batch ends: once it cannot be met even if every row not yet
        answered succeeds, open batches are cancelled, nothing more is sent, the answered rows land and
        the task fails
    :param warn_after: a batch open longer than this (default 12 h; None: never) is logged as a warning
        once and passed to ``on_stuck_batch``; the task keeps waiting
    :param on_stuck_batch: your callable (e.g. a Slack post), called on the worker with a dict: dag_id,
        task_id, run_id, try_number, provider, model, batch_ids, open_seconds, warn_after. With
        ``deferrable=True`` the trigger hands the alert back to a worker to call it, then defers again
    :param xcom_max_rows: with ``destination=None``, the most result rows returned through XCom
    :param mode: "batch" (default: the provider's batch API, about half price), "realtime" (each row on
        the ordinary endpoint, on the worker, no deferral) or "auto" (decided per run after the request
        cache: real-time under 100 rows, without a batch API, or when a batch cannot be expected before
        ``deadline``; else batch). Templated. The decision, its reason and the money at stake are logged,
        kept for later tries and returned in the summary (``mode``); result rows say ``answered_by``
    :param max_concurrency: real-time requests in flight at once (also the most that may be paid once
        more after a killed try)
    :param requests_per_minute: client-side real-time request rate limit (None: unlimited)
    :param tokens_per_minute: client-side real-time token rate limit, on the prompt estimate (None: unlimited)
    :param deadline: when the rows must have landed: a timedelta from the run's start (data interval end,
        else logical date), a datetime, or an ISO-8601 string (templated). ``mode="auto"`` weighs it; in
        batch mode, batches still open when real-time needs the time left are cancelled, their answered
        rows kept, and the rest sent in real time (summary ``deadline_fallback``)
    :param expected_batch_turnaround: how long a batch is expected to take (timedelta, default 2 h): with
        ``mode="auto"``, a deadline nearer than this picks real-time
    :param deadline_margin: time kept in hand when planning a ``deadline`` (timedelta or seconds >= 0,
        default 5 min): the batch-mode fallback switches at deadline - real-time's estimate - this margin
    :param realtime_latency_estimate: seconds one real-time answer is assumed to take (> 0, default 2.0):
        real-time is planned at ``max_concurrency / this`` rows per second (capped by
        ``requests_per_minute``), for the fallback's switch time and ``mode="auto"``'s deadline reason
    """

    template_fields: Sequence[str] = (*RequestOptions.template_fields, "destination", "mode", "deadline")
    operator_extra_links = (RunReportLink(), BatchConsoleLink())
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        destination: Any = None,
        deferrable: bool | None = None,
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
        warn_after: timedelta | float | None = DEFAULT_WARN_AFTER,
        on_stuck_batch: StuckCallback | None = None,
        mode: str = "batch",
        max_concurrency: int = 16,
        requests_per_minute: int | None = None,
        tokens_per_minute: int | None = None,
        deadline: timedelta | datetime | str | None = None,
        expected_batch_turnaround: timedelta = AutoRule.expected_batch_turnaround,
        deadline_margin: timedelta | float = DEFAULT_MARGIN,
        realtime_latency_estimate: float = TYPICAL_LATENCY_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.destination, self.poll_interval = destination, poll_interval
        self.wait_timeout, self.cancel_on_timeout, self.cancel_on_kill = timeout, cancel_on_timeout, cancel_on_kill
        self.max_attempts, self.retry_on = max_attempts, tuple(retry_on)
        self.enqueued_token_budget, self.max_open_batches = enqueued_token_budget, max_open_batches
        self.min_success_rate, self.xcom_max_rows = min_success_rate, xcom_max_rows
        self.mode, self.max_concurrency, self.deadline = mode, max_concurrency, deadline
        self.requests_per_minute, self.tokens_per_minute = requests_per_minute, tokens_per_minute
        self.expected_batch_turnaround = expected_batch_turnaround
        self.deadline_margin, self.realtime_latency_estimate = deadline_margin, realtime_latency_estimate
        WaitSettings.of(self)  # a bad value fails when the DAG is parsed
        RealtimeSettings.of(self, templated=True)
        self.warn_after = warn_after_seconds(self.task_id, warn_after)
        self.on_stuck_batch = on_stuck_batch
        self._warned: set[str] = set()  # batches already reported stuck (carried by the trigger's events)
        self._try: OperatorTry | None = None
        self._killed = False

    # -- the task ----------------------------------------------------------------------------------
    @fail_without_retry
    def execute(self, context: Any) -> Any:
        run = self._start(context)
        manifest = self.prepare_manifest(run, run.request, context)
        decision = decide(run, run.request, run.realtime, context, record=not run.request.estimate_only)
        if run.request.estimate_only:
            self.log.info("dry_run: nothing submitted")
            return {**dry_run_summary(run.request, manifest), "mode": decision.to_dict()}
        check_realtime_budget(decision, run.request.max_cost_usd)
        try:
            if run.wait.destination:
                open_sink(run.wait.destination).check(run.landing)
            else:
                check_fits(manifest.total_rows, run.wait.xcom_max_rows)
        except InvalidInputError as exc:  # a retry cannot fix a wrong destination: fail for good
            raise AirflowFailException(f"InvalidInputError: {exc}") from exc
        if decision.mode is Mode.REALTIME:
            send_in_realtime(run, run.request.parser, run.realtime.runner_settings(run.wait.policy))
        return self._advance(run)  # lands at once unless rows wait on another run's batch (adopted)

    @fail_without_retry
    def execute_complete(self, context: Any, event: Any = None) -> Any:
        run = self._start(context)
        manifest = run.load(f"{REMOVED_WHILE_DEFERRED}; its batches are {self.task_id}'s XCom 'batch_ids'",
                            rebuild=lambda: self.prepare_manifest(run, run.request, context))
        wait = check_event(event, on_timeout=lambda: self._cancel(run, manifest.open_batch_ids,
                                                                  run.wait.cancel_on_timeout))
        run.records().record_progress(manifest, wait.batches)
        self._warned = set(wait.warned)
        if wait.stuck:
            self._stuck(run, wait.stuck)
        return self._advance(run)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the rows source as input, the destination as output (see operators/lineage.py)."""
        from airflow_llm_batch.operators.lineage import operator_lineage

        return operator_lineage(self.rows, self.destination)

    def on_kill(self) -> None:
        """Cancel open batches (``cancel_on_kill``) and remember that we did: if the task runs again
        (a clear), their unanswered rows are resent, and answered rows are kept."""
        self._killed = True
        run = self._try
        if run is None or not run.wait.cancel_on_kill:
            return
        manifest = run.store.load()
        if manifest is not None:
            self._cancel(run, manifest.open_batch_ids, True)

    def _start(self, context: Any) -> OperatorTry:
        """This try's settings (from the rendered fields), provider access and run folder."""
        request, wait = self.request_settings(), WaitSettings.of(self)
        self._try = OperatorTry(
            access=ProviderAccess.resolve(request.provider, request.conn_id, request.provider_options),
            folder=run_folder(request.workspace, context), tags=run_tags(context), policy=wait.policy,
            admission=wait.admission, cache=request.answer_cache(), context=context, request=request, wait=wait,
            realtime=RealtimeSettings.of(self))
        return self._try

    # -- the loop: collect what ended, send what waits, then wait or land ---------------------------
    def _advance(self, run: OperatorTry) -> Any:
        manifest = run.manifest
        deadline = self._deadline(run)
        while True:
            if self._killed:
                raise AirflowException("the task was killed: stopping before landing (the next try re-attaches)")
            plan = fallback_plan(manifest, run.realtime, run_start(run.context))
            switch = switch_time(manifest, run.realtime, run_start(run.context))
            if fallback_due(manifest, switch, time.time()) and fallback_affordable(run, run.request, plan):
                # the deadline, within max_cost_usd: cancel, keep answers, send the rest in real time
                fall_back(run, run.request.parser, run.realtime.runner_settings(run.wait.policy), plan=plan,
                          poll_interval=run.wait.poll_interval, stop=lambda: self._killed)
                return self._land(run)
            try:
                run.call(_step(manifest, run.request.parser, lambda: not self._rate_lost(run)))
            except InvalidInputError as exc:  # e.g. one row over the provider's limit: a retry cannot fix it
                raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
            run.context["ti"].xcom_push(key="batch_ids", value=manifest.batch_ids)
            if manifest.is_done:
                return self._land(run)
            if self._rate_lost(run):
                self._fail_fast(run)
            # with min_success_rate, resume as each batch ends: the rate is checked on every collect
            waiting = any(c.state == ChunkState.PREPARED for c in manifest.chunks) \
                or run.wait.min_success_rate is not None
            if run.wait.deferrable:
                self.defer(trigger=self._trigger(run, deadline, waiting, switch), method_name="execute_complete")
            self._wait_on_worker(run, deadline, waiting, switch)

    def _trigger(self, run: OperatorTry, deadline: float | None, any_end: bool,
                 switch_at: float | None) -> LLMBatchTrigger:
        return LLMBatchTrigger(provider=run.request.provider, conn_id=run.access.conn_id,
                               provider_options=run.access.options, batch_ids=run.manifest.open_batch_ids,
                               poll_interval=run.wait.poll_interval, timeout_at=deadline,
                               return_on_first_end=any_end, run_folder=str(run.folder),
                               cancel_on_kill=run.wait.cancel_on_kill, switch_at=switch_at,
                               stuck=stuck_alert(run.manifest, self.warn_after, warned=self._warned,
                                                 stop=self.on_stuck_batch is not None))

    def _deadline(self, run: OperatorTry) -> float | None:
        """``timeout`` counts from this try's first wait: a cleared or retried task gets a fresh one."""
        manifest = run.manifest
        if run.wait.wait_timeout is None:
            return None
        try_number = int(getattr(run.context["ti"], "try_number", 0) or 0)
        if manifest.deadline is None or manifest.deadline.get("try") != try_number:
            manifest.deadline = {"try": try_number, "at": timeout_at(run.wait.wait_timeout, time.time())}
            run.store.save(manifest)
        return float(manifest.deadline["at"])

    def _land(self, run: OperatorTry) -> Any:
        manifest = run.manifest
        price, taken_on = run.request.price()
        summary = land(run.records(), manifest, landing=run.landing, destination=run.wait.destination,
                       provider=run.request.provider, min_success_rate=run.wait.min_success_rate, price=price,
                       prices_taken_on=taken_on, on_report=lambda uri: RunReportLink.persist(run.context, uri))
        if manifest.breaker:
            b = manifest.breaker
            raise ProviderError(
                f"circuit breaker: {b['rows']} of {b['of']} rows of batch {b['batch_id']} failed with "
                f"{b['code']} ({b['message']}); nothing more was submitted. Results were landed with every "
                f"row's reason. Fix the connection/account, then clear the task."
            )
        return summary

    def _wait_on_worker(self, run: OperatorTry, deadline: float | None, any_end: bool,
                        switch_at: float | None) -> None:
        """deferrable=False: poll from the worker (holds the slot; for setups without a triggerer), with
        the trigger's decisions (pipeline/waiting.py) and its tolerance of failed polls."""
        manifest = run.manifest
        alert = stuck_alert(manifest, self.warn_after, warned=self._warned, stop=False)
        rules = WaitRules(tuple(manifest.open_batch_ids), run.wait.poll_interval, deadline, any_end,
                          switch_at=switch_at, **stuck_rules(alert))
        event = wait_on_worker(lambda: run.call(lambda batch_run: batch_run.poll(manifest)), rules,
                               stop=lambda: self._killed, log=self.log, on_stuck=lambda ids: self._stuck(run, ids))
        if event is not None:
            end_of_wait(event, on_timeout=lambda: self._cancel(run, manifest.open_batch_ids,
                                                               run.wait.cancel_on_timeout))

    def _stuck(self, run: OperatorTry, ids: Iterable[str]) -> None:
        """Batches open longer than ``warn_after``: remember them (warned once) and call ``on_stuck_batch``."""
        ids = list(ids)
        self._warned.update(ids)
        ti = run.context["ti"]
        where = {"dag_id": ti.dag_id, "task_id": ti.task_id, "run_id": ti.run_id,
                 "try_number": getattr(ti, "try_number", None), "run_folder": str(run.folder)}
        call_on_stuck(self.on_stuck_batch, stuck_info(run.manifest, ids, self.warn_after, where), self.log)

    def _rate_lost(self, run: OperatorTry) -> bool:
        return success_rate_lost(run.records().summary(run.manifest), run.wait.min_success_rate)

    def _fail_fast(self, run: OperatorTry) -> None:
        """``min_success_rate`` cannot be met: cancel what is open, land what is answered, fail the task."""
        open_ids = run.manifest.open_batch_ids
        self._cancel(run, open_ids, True)
        summary = run.records().summary(run.manifest)
        message = lost_rate_message(summary, run.wait.min_success_rate or 0.0, len(open_ids))
        self.log.error("%s", message)
        try:
            self._land(run)
        except TooManyFailuresError:
            pass  # the landing's own check agrees: the message below says more
        raise TooManyFailuresError(message)

    def _cancel(self, run: TaskRun, ids: list[str], enabled: bool) -> str:
        if not enabled or not ids:
            self.log.info("Leaving %d open batch(es) running: %s", len(ids), ids)
            return "left running (cancel_on_timeout=False)" if ids else "none open"
        run.cancel(ids)
        self.log.warning("Cancelled %d open batch(es): %s", len(ids), ids)
        return "cancelled"


def _step(manifest: Manifest, parser: OutputParser,
          may_submit: Callable[[], bool] = lambda: True) -> Callable[[BatchRun], Awaitable[None]]:
    """One turn of the loop, where the backend lives: collect what ended, answer the rows that need
    no batch, stop on a tripped breaker, send what admission allows (unless ``may_submit()`` says no:
    the success rate is already lost)."""

    async def step(run: BatchRun) -> None:
        await run.collect(manifest, parser)
        run.finalize(manifest, parser)
        if manifest.breaker and manifest.open_batch_ids:
            await asyncio.gather(*(run.backend.cancel(b) for b in manifest.open_batch_ids))
        if may_submit():
            await run.submit(manifest)

    return step
