"""LLMBatchOperator's ``mode``: decide batch or real-time once per run (kept in the manifest for every
later try), and answer a run in real time on the worker.

The decision is made after preparing, so the rows the request cache answered are not counted; its
reason and the money at stake go to the log, the manifest and the summary. Real-time runs on the
worker (no deferral) through the engine's event-loop bridge (:meth:`TaskRun.call`).

Example::

    decision = decide(run, request, realtime, context)
    if decision.mode is Mode.REALTIME:
        send_in_realtime(run, request.parser, realtime.runner_settings(policy))
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from airflow_llm_batch.backends.batch_api_probe import batch_api_available
from airflow_llm_batch.exceptions import BudgetExceededError, InvalidInputError, ProviderError
from airflow_llm_batch.operators.run_context import TaskRun
from airflow_llm_batch.operators.settings import RealtimeSettings, RequestSettings
from airflow_llm_batch.pipeline.manifest import Manifest
from airflow_llm_batch.pipeline.parsing import OutputParser
from airflow_llm_batch.pipeline.realtime_chunks import answer_in_realtime, claim_for_realtime
from airflow_llm_batch.pipeline.run import BatchRun
from airflow_llm_batch.realtime.decision import Mode, ModeDecision, decide_mode
from airflow_llm_batch.realtime.runner import RunnerReport, RunnerSettings

log = logging.getLogger(__name__)


def run_start(context: Any) -> datetime:
    """The moment a ``deadline`` timedelta counts from: the data interval's end, else the logical date,
    else when the run was asked for, else now."""
    for name in ("data_interval_end", "logical_date"):
        if context.get(name) is not None:
            return context[name]  # type: ignore[no-any-return]
    dag_run = context.get("dag_run")
    moment = getattr(dag_run, "run_after", None) or getattr(dag_run, "start_date", None)
    return moment if isinstance(moment, datetime) else datetime.now(timezone.utc)


def stored_decision(manifest: Manifest) -> ModeDecision | None:
    data = manifest.mode
    if not data:
        return None
    return ModeDecision(Mode(data["mode"]), data["reason"], int(data["rows"]), data.get("batch_usd"),
                        data.get("realtime_usd"))


def rows_left(manifest: Manifest) -> int:
    """Rows this run sends on its own (after the request cache and repeats): retries are not counted."""
    return sum(c.count for c in manifest.chunks if c.retry_of is None)


def decide(run: TaskRun, request: RequestSettings, realtime: RealtimeSettings, context: Any, *,
           record: bool = True) -> ModeDecision:
    """This run's path: the one an earlier try recorded, else decided now (and recorded unless ``record``
    is False, as for a dry run). ``mode="batch"`` asks the provider nothing."""
    manifest = run.manifest
    kept = stored_decision(manifest)
    if kept is not None:
        log.info("Mode: %s (decided by an earlier try)", kept.describe())
        return kept
    estimate = request.estimate(manifest)
    if realtime.mode is Mode.BATCH:
        decision = ModeDecision(Mode.BATCH, "set by mode='batch'", rows_left(manifest), estimate.batch_usd,
                                estimate.realtime_usd)
    else:
        has_batch_api = run.call(_probe)
        seconds = realtime.seconds_to_deadline(run_start(context), datetime.now(timezone.utc))
        try:
            decision = decide_mode(realtime.mode, rows=rows_left(manifest), has_batch_api=has_batch_api,
                                   estimate=estimate, seconds_to_deadline=seconds, rule=realtime.rule)
        except ValueError as exc:
            raise InvalidInputError(f"task {request.task_id!r}: {exc}") from exc
    log.info("Mode: %s", decision.describe())
    if record:
        manifest.mode = decision.to_dict()
        run.store.save(manifest)
    return decision


async def _probe(batch_run: BatchRun) -> bool:
    return await batch_api_available(batch_run.backend)


def check_realtime_budget(decision: ModeDecision, max_cost_usd: float | None) -> None:
    """A real-time run is checked against ``max_cost_usd`` at the real-time price."""
    if max_cost_usd is None or decision.mode is not Mode.REALTIME or decision.realtime_usd is None:
        return
    if decision.realtime_usd > max_cost_usd:
        raise BudgetExceededError(
            f"estimated real-time cost ${decision.realtime_usd:.4f} for {decision.rows:,} row(s) is over the "
            f"budget max_cost_usd={max_cost_usd}. Nothing was sent. Raise max_cost_usd, send fewer rows, or "
            f"use mode='batch' (about half the price).")


def send_in_realtime(run: TaskRun, parser: OutputParser, settings: RunnerSettings) -> RunnerReport:
    """Claim the run's unsent chunks for real-time, send them, store their rows; a tripped circuit
    breaker fails the try (rows not sent stay unsent: a retry sends them, the answered ones are kept)."""
    manifest = run.manifest
    claimed = claim_for_realtime(manifest, run.store)
    log.info("Real-time: %d row(s) to answer, up to %d request(s) in flight", claimed, settings.max_concurrency)

    async def work(batch_run: BatchRun) -> RunnerReport:
        return await answer_in_realtime(batch_run, manifest, parser, settings)

    report = run.call(work)
    if report.breaker is not None:
        raise ProviderError(
            f"circuit breaker: a real-time call failed with {report.breaker.code} ({report.breaker.message}); "
            f"no further request was sent ({report.unsent} row(s) unsent, not paid; {report.answered} answered "
            f"in this try are kept). Fix the connection/account, then clear the task: it sends only the "
            f"unanswered rows.")
    run.records().finalize(manifest, parser)
    return report
