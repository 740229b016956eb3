"""Run metrics through Airflow's own metrics layer (StatsD, Datadog or OpenTelemetry, as the
deployment's ``[metrics]`` section configures it): one set per landed task run, read from the run's
:class:`~airflow_llm_batch.report.RunFacts` (the numbers the report draws, one source).

Every metric is tagged ``provider``, ``model``, ``dag_id``, ``task_id``. Plain StatsD drops tags, so
the dimensions that matter most (row status, error code) are also in the names.

Example: ``emit_run_metrics(read_facts(folder), {"provider": "openai", "model": "gpt-4o-mini",
"dag_id": "d", "task_id": "t"})``
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk.observability import stats

from airflow_llm_batch.report.facts import RunFacts

PREFIX = "llm_batch"


def _name(*parts: str) -> str:
    return stats.normalize_name_for_stats(".".join((PREFIX, *parts)), log_warning=False)


def run_counters(facts: RunFacts) -> dict[str, int]:
    """The counters of one run: rows, errors, requests, tokens and batches."""
    summary, bars = facts.summary, facts.bars
    counters = {
        "rows.total": summary.total, "rows.succeeded": summary.succeeded, "rows.failed": summary.failed,
        "requests.sent": summary.sent_rows, "requests.cached": summary.cached_rows,
        "requests.repeated": summary.repeated_rows, "requests.resubmitted": summary.resubmitted_rows,
        "tokens.input": summary.usage.input_tokens, "tokens.output": summary.usage.output_tokens,
        "tokens.cached_input": summary.usage.cached_input_tokens,
        "batches.created": len(bars), "batches.requeued": summary.requeued_batches,
        "batches.expired": sum(b.state == "expired" for b in bars),
        "batches.failed": sum(b.state == "failed" for b in bars),
    }
    for code, count in summary.errors_by_code.items():
        counters[f"errors.{code}"] = count
    return counters


def run_gauges(facts: RunFacts) -> dict[str, float]:
    """Cost (USD, only when the price is known) and the success rate of one run."""
    cost, summary = facts.cost, facts.summary
    gauges = {"cost.batch_usd": cost.batch_usd, "cost.realtime_usd": cost.realtime_usd,
              "cost.saving_usd": cost.saving_usd}
    out = {name: float(value) for name, value in gauges.items() if value is not None}
    if summary.total:
        out["success_rate"] = summary.succeeded / summary.total
    return out


def run_timers(facts: RunFacts) -> dict[str, list[float]]:
    """Seconds: the run (first submit to last batch end) and, per batch, open / queued / running."""
    timers: dict[str, list[float]] = {"run.duration": [], "batch.open": [], "batch.queued": [],
                                      "batch.running": []}
    if facts.duration_seconds is not None:
        timers["run.duration"].append(facts.duration_seconds)
    for bar in facts.bars:
        if bar.seconds_open is not None:
            timers["batch.open"].append(bar.seconds_open)
        if bar.running_at is not None and bar.submitted_at is not None and bar.ended_at is not None:
            timers["batch.queued"].append(max(0.0, bar.running_at - bar.submitted_at))
            timers["batch.running"].append(max(0.0, bar.ended_at - bar.running_at))
    return {name: values for name, values in timers.items() if values}


def emit_run_metrics(facts: RunFacts, tags: dict[str, str]) -> int:
    """Send the run's counters, gauges and timers; return how many metrics were sent."""
    sent = 0
    for name, count in run_counters(facts).items():
        stats.incr(_name(name), count, tags=tags)
        sent += 1
    for name, value in run_gauges(facts).items():
        stats.gauge(_name(name), value, tags=tags)
        sent += 1
    for name, values in run_timers(facts).items():
        for seconds in values:
            stats.timing(_name(name), timedelta(seconds=seconds), tags=tags)
            sent += 1
    return sent
