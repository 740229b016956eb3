"""The run report page: one self-contained HTML file (inline CSS and SVG; no script, no network).

Sections: the run at a glance, rows by status and error code, tokens and cost against real-time with
the saving (and the estimate made before submitting), the batch timeline, the slowest batches, and
samples of failed rows with their reasons. Prompt text never appears; answers of failed rows only
when the report is built with ``include_text=True``.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any

from airflow_llm_batch.report.facts import BatchBar, RunFacts
from airflow_llm_batch.report.timeline import timeline_svg

_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#212529}h1{font-size:20px}
h2{font-size:16px;margin-top:28px}table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid
#dee2e6;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#868e96}
.label,.axis,.note{font:11px monospace;fill:#495057}.requeued{fill:#f1f3f5;stroke:#adb5bd;stroke-dasharray:3}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}"""


def render_page(facts: RunFacts) -> str:
    """The whole HTML document for one run."""
    m = facts.manifest
    title = f"LLM batch run: {m.provider} / {m.model}"
    sections = [_glance(facts), _rows_section(facts), _cost_section(facts), _timeline_section(facts.bars),
                _slowest_section(facts.slowest()), _failures_section(facts)]
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{_CSS}</style></head><body><h1>{escape(title)}</h1>"
            f'<p class="muted">{escape(facts.folder)}</p>' + "".join(sections) + "</body></html>")


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'<td class="n">{value:,}</td>' if isinstance(value, int) else f'<td class="n">{value:,.4f}</td>'
    return f"<td>{escape(str(value))}</td>"


def _when(epoch: float | None) -> str:
    return "-" if epoch is None else dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _glance(facts: RunFacts) -> str:
    s = facts.summary
    duration = facts.duration_seconds
    rows: list[list[Any]] = [["rows", s.total], ["succeeded", s.succeeded], ["failed", s.failed],
            ["batches", len(facts.bars)], ["requeued batches", s.requeued_batches],
            ["rows sent again (retries)", s.resubmitted_rows],
            ["answered without a request (cache / repeats)", s.cached_rows + s.repeated_rows],
            ["first submit", _when(facts.started_at)], ["last batch ended", _when(facts.ended_at)],
            ["duration", "-" if duration is None else f"{duration:,.1f} s"]]
    return "<h2>At a glance</h2>" + _table(["", ""], rows)


def _rows_section(facts: RunFacts) -> str:
    s = facts.summary
    by_status: list[list[Any]] = [["succeeded", s.succeeded], ["failed", s.failed]]
    errors: list[list[Any]] = [[code, count] for code, count in sorted(s.errors_by_code.items(), key=lambda kv: -kv[1])]
    return ("<h2>Rows by status</h2>" + _table(["status", "rows"], by_status)
            + ("<h2>Failed rows by error code</h2>" + _table(["error code", "rows"], errors) if errors else ""))


def _cost_section(facts: RunFacts) -> str:
    c, usage = facts.cost, facts.summary.usage
    tokens: list[list[Any]] = [["input", usage.input_tokens], ["output", usage.output_tokens],
                               ["cached input", usage.cached_input_tokens]]
    if not c.price_known:
        money = "<p>Cost unknown: the model has no price (add it to [llm_batch] prices_file or prices=).</p>"
    else:
        money = _table(["", "USD"], [["batch price (paid)", c.batch_usd], ["real-time equivalent", c.realtime_usd],
                                     ["saving of batch", c.saving_usd],
                                     ["saved by answers not paid again", c.cached_saving_usd]])
        money += f'<p class="muted">prices of {escape(c.taken_on or "unknown date")}</p>'
    estimate = facts.manifest.estimate or {}
    guess = ""
    if estimate:
        guess = _table(["estimate before submitting", ""], [
            ["input tokens", estimate.get("input_tokens", "-")], ["batch USD", estimate.get("batch_usd") or "-"]])
    return "<h2>Tokens and cost</h2>" + _table(["tokens", ""], tokens) + money + guess


def _timeline_section(bars: list[BatchBar]) -> str:
    legend = "".join(f'<span style="background:{colour}"></span>{name}' for name, colour in (
        ("created", "#9aa5b1"), ("validating", "#f0b429"), ("running / open", "#3e7cb1"),
        ("completed", "#2f9e44"), ("failed", "#e03131"), ("expired", "#e8590c")))
    return f'<h2>Timeline ({len(bars)} batches)</h2><p class="legend">{legend}</p>' + timeline_svg(bars)


def _slowest_section(bars: list[BatchBar]) -> str:
    rows = [[b.batch_id, b.chunk, b.rows, b.state, f"{b.seconds_open or 0.0:,.1f}"] for b in bars]
    return "<h2>Slowest batches</h2>" + _table(["batch", "chunk", "rows", "state", "open (s)"], rows)


def _failures_section(facts: RunFacts) -> str:
    if not facts.failures:
        return "<h2>Failed rows</h2><p>None.</p>"
    with_text = any(f.text is not None for f in facts.failures)
    headers = ["key", "error code", "reason", "attempts", "batch"] + (["answer"] if with_text else [])
    rows = [[f.key, f.code, f.message, f.attempts, f.batch_id or "-"] + ([f.text or ""] if with_text else [])
            for f in facts.failures]
    note = f'<p class="muted">first {len(rows)} of {facts.summary.failed} failed rows</p>'
    return "<h2>Failed rows</h2>" + note + _table(headers, rows)
