"""Shared plumbing of the operators and the sensor: where a task run's state lives, how to reach the
provider, and how results land. Kept out of the operator classes so each face stays short."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from airflow.sdk import ObjectStoragePath
from airflow.sdk.definitions.connection import Connection

from airflow_llm_batch.exceptions import BatchTimeoutError, ProviderError, TooManyFailuresError
from airflow_llm_batch.hooks import LLMBatchHook, hook_class
from airflow_llm_batch.hooks.options import check_options, with_options
from airflow_llm_batch.pipeline.cost import CostReport, actual_cost, row_cost_usd
from airflow_llm_batch.pipeline.manifest import Manifest
from airflow_llm_batch.pipeline.parsing import OutputParser
from airflow_llm_batch.pipeline.prices import ModelPrice
from airflow_llm_batch.pipeline.run import BatchRun
from airflow_llm_batch.pipeline.types import ResultRow, Usage
from airflow_llm_batch.sinks import LandingContext, Sink, open_sink
from airflow_llm_batch.sinks.xcom import as_xcom
from airflow_llm_batch.sources.rows import to_path
from airflow_llm_batch.triggers.events import WaitEvent, WaitOutcome

log = logging.getLogger(__name__)
T = TypeVar("T")


def default_workspace() -> str:
    """``[llm_batch] workspace``, else ``file://$AIRFLOW_HOME/llm_batch_workspace`` (one per install)."""
    from airflow.configuration import AIRFLOW_HOME, conf

    fallback = f"file://{AIRFLOW_HOME}/llm_batch_workspace"
    return str(conf.get("llm_batch", "workspace", fallback=fallback) or fallback)


def run_folder(workspace: str | None, context: Any) -> ObjectStoragePath:
    """``{workspace}/{dag_id}/{task_id}/{run_id}[/{map_index}]``: one folder per task run, shared by
    its tries, so a retry finds what an earlier try paid for."""
    ti = context["ti"]
    parts = [ti.dag_id, ti.task_id, ti.run_id]
    if getattr(ti, "map_index", -1) not in (-1, None):
        parts.append(str(ti.map_index))
    folder = to_path(workspace or default_workspace())
    for part in parts:
        folder = folder / re.sub(r"[^A-Za-z0-9_.=+-]", "_", str(part))
    return folder


def run_tags(context: Any) -> dict[str, str]:
    ti = context["ti"]
    tags = {"dag_id": ti.dag_id, "task_id": ti.task_id, "run_id": ti.run_id}
    if getattr(ti, "map_index", -1) not in (-1, None):
        tags["map_index"] = str(ti.map_index)
    return tags


@dataclass
class ProviderAccess:
    """A provider + connection, resolved on the worker. Backends are built per event loop."""

    provider: str
    conn_id: str
    hook: LLMBatchHook
    conn: Connection

    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def resolve(cls, provider: str, conn_id: str | None, options: Mapping[str, Any] | None = None) -> ProviderAccess:
        """``options`` override the connection's extras for this task (see hooks/options.py)."""
        hook = hook_class(provider)(conn_id)
        checked = check_options(options)
        return cls(provider, hook.conn_id, hook, with_options(hook.get_connection(hook.conn_id), checked), checked)

    def run(self, folder: ObjectStoragePath, tags: dict[str, str], work: Callable[[BatchRun], Awaitable[T]],
            **options: Any) -> T:
        """Run ``work`` with a BatchRun whose backend lives (and is closed) in one event loop."""

        async def _go() -> T:
            backend = self.hook.backend_from_connection(self.conn)
            try:
                return await work(BatchRun(folder, backend, tags=tags, **options))
            finally:
                await backend.aclose()

        return asyncio.run(_go())

    def offline_run(self, folder: ObjectStoragePath, tags: dict[str, str], **options: Any) -> BatchRun:
        """A BatchRun for work that makes no calls (preparing, reading results)."""
        return BatchRun(folder, self.hook.backend_from_connection(self.conn), tags=tags, **options)


def timeout_at(timeout: timedelta | float | None, start: float) -> float | None:
    if timeout is None:
        return None
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
    return start + seconds


def check_event(event: Any, *, on_timeout: Callable[[], str]) -> WaitEvent:
    """Validate a trigger event; raise the matching error for timeout and polling failures.

    ``on_timeout`` acts on the open batches and says what it did ("cancelled" / "left running").
    """
    wait = WaitEvent.from_payload(event)
    if wait.outcome == WaitOutcome.TIMEOUT:
        done = on_timeout()
        open_ids = [b.batch_id for b in wait.batches if not b.state.is_terminal]
        raise BatchTimeoutError(f"{wait.message}: {len(open_ids)} open batch(es) {done} ({open_ids}). "
                                f"Finished rows are kept in the workspace; clearing the task re-attaches.")
    if wait.outcome == WaitOutcome.ERROR:
        raise ProviderError(f"waiting for the batches failed: {wait.message}. A retry re-attaches to them.")
    return wait


def land(
    run: BatchRun,
    manifest: Manifest,
    *,
    landing: LandingContext,
    destination: str | Sink | None,
    provider: str,
    min_success_rate: float | None,
    price: ModelPrice | None = None,
    prices_taken_on: str = "",
) -> dict[str, Any]:
    """Write results to ``destination`` (or into the summary for XCom) and return the summary."""
    summary = run.summary(manifest)
    cost = actual_cost(price, summary.usage, cached_usage=Usage.from_dict(manifest.cached_usage),
                       cached_rows=manifest.cached_rows + manifest.follower_rows, taken_on=prices_taken_on)
    out: dict[str, Any] = {"provider": provider, "model": manifest.model, **summary.to_dict(),
                           "cost": cost.to_dict(), "estimate": manifest.estimate,
                           "workspace": str(run.folder), "destination": None}
    rows = with_row_cost(run.iter_results(manifest), price)
    if destination:
        landed = open_sink(destination).write(rows, landing)
        out["destination"] = landed.get("uri", str(destination))
        out["landed"] = landed
    else:
        out["results"] = as_xcom(rows)
    log.info("Results: %d succeeded, %d failed of %d; errors %s; tokens in=%d out=%d; batches %s; -> %s",
             summary.succeeded, summary.failed, summary.total, summary.errors_by_code or "none",
             summary.usage.input_tokens, summary.usage.output_tokens, summary.batch_ids,
             out["destination"] or "XCom")
    log.info("Cost: %s", describe_cost(cost))
    _enforce_success_rate(summary.succeeded, summary.total, min_success_rate, summary.errors_by_code)
    return out


def with_row_cost(rows: Iterable[ResultRow], price: ModelPrice | None) -> Iterator[ResultRow]:
    """Add ``cost_usd`` (batch price of the row's usage) to each row when the price is known."""
    for row in rows:
        if price is not None:
            row.extra["cost_usd"] = row_cost_usd(price, row.usage)
        yield row


def describe_cost(cost: CostReport) -> str:
    if not cost.price_known:
        return "unknown (model not in the price table; pass prices= to price it)"
    return (f"${cost.batch_usd:.4f} at batch price vs ${cost.realtime_usd:.4f} real-time: saved "
            f"${cost.saving_usd:.4f}; {cost.cached_rows} row(s) answered without paying saved another "
            f"${cost.cached_saving_usd:.4f} (prices of {cost.taken_on})")


def _enforce_success_rate(succeeded: int, total: int, minimum: float | None, errors: dict[str, int]) -> None:
    if total and succeeded == 0:
        raise TooManyFailuresError(f"every one of the {total} rows failed ({errors}); results were landed "
                                   f"for inspection. Fix the cause, then clear the task.")
    if minimum is not None and total and succeeded / total < minimum:
        raise TooManyFailuresError(f"only {succeeded}/{total} rows succeeded, below min_success_rate="
                                   f"{minimum:.0%} ({errors}); results were landed for inspection.")


def parser_for(response_format: Any) -> OutputParser:
    return OutputParser(response_format)


def landing_context(context: Any, parser: OutputParser, provider: str, model: str) -> LandingContext:
    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    return LandingContext(dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id,
                          map_index=-1 if map_index is None else int(map_index),
                          response_schema=parser.schema, provider=provider, model=model)
