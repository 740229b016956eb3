"""How a finished run lands: results to the destination (or XCom), the summary, the cost, and the
success-rate check that fails the task after landing.

Example: ``land(records, manifest, landing=landing_context(context, parser, "openai", "gpt-4o-mini"),
destination="gs://bucket/out.jsonl", provider="openai", min_success_rate=0.9)``
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from airflow_llm_batch.exceptions import TooManyFailuresError
from airflow_llm_batch.operators.metrics import PREFIX as METRICS_PREFIX
from airflow_llm_batch.operators.metrics import emit_run_metrics
from airflow_llm_batch.pipeline.cost import CostReport, actual_cost, row_cost_usd
from airflow_llm_batch.pipeline.manifest import Manifest
from airflow_llm_batch.pipeline.parsing import OutputParser
from airflow_llm_batch.pipeline.prices import ModelPrice
from airflow_llm_batch.pipeline.record_cost import COST_KEY, RecordPricer, price_note
from airflow_llm_batch.pipeline.run import BatchRun
from airflow_llm_batch.pipeline.run_folder import ResultLines, RunFolder
from airflow_llm_batch.pipeline.storage import StoragePath
from airflow_llm_batch.pipeline.types import ResultRow, Usage
from airflow_llm_batch.report import read_facts, storage_uri, write_facts_report
from airflow_llm_batch.sinks import LandingContext, Sink, open_sink
from airflow_llm_batch.sinks.xcom import as_xcom

log = logging.getLogger(__name__)


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
    on_report: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Write results to ``destination`` (or into the summary for XCom), then the run report and
    metrics (``on_report`` gets the report's URI), and return the summary."""
    summary = run.summary(manifest)
    cost = actual_cost(price, summary.usage, cached_usage=Usage.from_dict(manifest.cached_usage),
                       cached_rows=manifest.cached_rows + manifest.follower_rows, taken_on=prices_taken_on,
                       realtime_usage=summary.realtime_usage)
    out: dict[str, Any] = {"provider": provider, "model": manifest.model, **summary.to_dict(),
                           "cost": cost.to_dict(), "estimate": manifest.estimate,
                           "workspace": str(run.folder), "destination": None}
    if destination:
        landed = land_results(open_sink(destination), run.run_folder, manifest, price, landing)
        out["destination"] = landed.get("uri", str(destination))
        out["landed"] = landed
    else:
        out["results"] = as_xcom(with_row_cost(run.iter_results(manifest), price))
    log.info("Results: %d succeeded, %d failed of %d; errors %s; tokens in=%d out=%d; batches %s; -> %s",
             summary.succeeded, summary.failed, summary.total, summary.errors_by_code or "none",
             summary.usage.input_tokens, summary.usage.output_tokens, summary.batch_ids,
             out["destination"] or "XCom")
    log.info("Cost: %s", describe_cost(cost))
    out["report"] = report_and_metrics(run.folder, landing)
    if out["report"] and on_report is not None:
        on_report(out["report"])
    _enforce_success_rate(summary.succeeded, summary.total, min_success_rate, summary.errors_by_code)
    return out


def report_and_metrics(folder: StoragePath, landing: LandingContext) -> str | None:
    """Write the run report beside the results and send the run's metrics; return the report's URI.

    Neither may fail the task: a problem is logged as a warning (the results are already landed)."""
    try:
        facts = read_facts(folder)
    except Exception as exc:
        log.warning("Run report and metrics skipped: reading %s failed (%s: %s)", folder, type(exc).__name__, exc)
        return None
    tags = {"provider": landing.provider, "model": landing.model, "dag_id": landing.dag_id,
            "task_id": landing.task_id}
    try:
        log.info("Sent %d run metric(s) (%s.*)", emit_run_metrics(facts, tags), METRICS_PREFIX)
    except Exception as exc:
        log.warning("Run metrics not sent (%s: %s)", type(exc).__name__, exc)
    try:
        path = write_facts_report(facts, folder)
    except Exception as exc:
        log.warning("Run report not written (%s: %s); the results are landed", type(exc).__name__, exc)
        return None
    uri = storage_uri(path)
    log.info("Run report: %s", uri)
    return uri


def land_results(sink: Sink, folder: RunFolder, manifest: Manifest, price: ModelPrice | None,
                 landing: LandingContext) -> dict[str, Any]:
    """Write every result of the run to ``sink``, each with its cost. A sink that takes records
    (``write_records``: the object storage sink) gets each results line's object as read, with the
    cost added (:func:`with_record_cost`); any other sink gets ``ResultRow`` objects (:func:`with_row_cost`).
    Both give the same rows. A sink that also takes whole lines (``takes_lines()``: JSONL, failures
    inline) gets the results file of each chunk priced at collect at this price as it is
    (:class:`ResultLines`): its bytes are what the record path would write."""
    write_records = getattr(sink, "write_records", None)
    if write_records is not None:
        takes_lines = getattr(sink, "takes_lines", None)
        copy = price_note(price) if takes_lines is not None and takes_lines() else None
        landed: dict[str, Any] = write_records(_landing_items(folder, manifest, price, copy), landing)
        return landed
    return sink.write(with_row_cost(folder.iter_results(manifest), price), landing)


def collect_price(price: ModelPrice | None, carry_columns: Iterable[str] | None) -> ModelPrice | None:
    """The price a run's rows are written with when collected (``Collector.price``): ``price``, or None
    when the carried columns are unknown (an older handle) or one is named ``cost_usd`` (landing sets
    that column in place, so its value must stay in the results file)."""
    if carry_columns is None or COST_KEY in carry_columns:
        return None
    return price


def _landing_items(folder: RunFolder, manifest: Manifest, price: ModelPrice | None,
                   copy: str | None) -> Iterator[dict[str, Any] | ResultLines]:
    """The run's results in order: a chunk's whole file when it is priced at ``copy`` (a price note),
    else its records priced now; then the rows answered without a batch."""
    for chunk in manifest.chunks:
        if not chunk.results:
            continue
        if copy is not None and chunk.priced == copy:
            yield folder.chunk_lines(chunk)
        else:
            yield from with_record_cost(folder.chunk_records(chunk), price)
    yield from with_record_cost(folder.answered_records(manifest), price)


def with_row_cost(rows: Iterable[ResultRow], price: ModelPrice | None) -> Iterator[ResultRow]:
    """Add ``cost_usd`` (the row's usage at the price of the path that answered it) when the price is known."""
    for row in rows:
        if price is not None:
            row.extra[COST_KEY] = row_cost_usd(price, row.usage, realtime=row.answered_by == "realtime")
        yield row


def with_record_cost(records: Iterable[dict[str, Any]], price: ModelPrice | None) -> Iterator[dict[str, Any]]:
    """:func:`with_row_cost` for rows as their ``ResultRow.to_dict()`` records (``cost_usd`` set in each,
    by record_cost.RecordPricer: what prices a chunk's rows at collect)."""
    if price is None:
        yield from records
        return
    yield from map(RecordPricer(price), records)


def describe_cost(cost: CostReport) -> str:
    if not cost.price_known:
        return "unknown (model not in the price table; pass prices= to price it)"
    sent_realtime = f"${cost.realtime_paid_usd:.4f} sent in real time + " if cost.realtime_usage.total_tokens else ""
    return (f"{sent_realtime}${cost.batch_usd:.4f} at batch price vs ${cost.realtime_usd:.4f} real-time: saved "
            f"${cost.saving_usd:.4f}; {cost.cached_rows} row(s) answered without paying saved another "
            f"${cost.cached_saving_usd:.4f} (prices of {cost.taken_on})")


def _enforce_success_rate(succeeded: int, total: int, minimum: float | None, errors: dict[str, int]) -> None:
    if total and succeeded == 0:
        raise TooManyFailuresError(f"every one of the {total} rows failed ({errors}); results were landed "
                                   f"for inspection. Fix the cause, then clear the task.")
    if minimum is not None and total and succeeded / total < minimum:
        raise TooManyFailuresError(f"only {succeeded}/{total} rows succeeded, below min_success_rate="
                                   f"{minimum:.0%} ({errors}); results were landed for inspection.")


def landing_context(context: Any, parser: OutputParser, provider: str, model: str) -> LandingContext:
    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    return LandingContext(dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id,
                          map_index=-1 if map_index is None else int(map_index),
                          response_schema=parser.schema, provider=provider, model=model)
