"""The batch timeline as inline SVG: one row per batch, time on the x axis from the run's first intent.

Each row draws the phases that were recorded: *created* (intent recorded until the provider gave an
id: upload and create), *open* (id known until the batch was seen ended; split into *validating* and
*running* when a ``running_at`` time was recorded) and a mark at the end coloured by the final state.
A batch replaced by a requeue has no recorded times and is drawn as a hatched row labelled "requeued";
a retry chunk (rows sent again after a retryable error) is labelled "retry of chunk N".
"""

from __future__ import annotations

from html import escape

from airflow_llm_batch.report.facts import BatchBar

ROW_HEIGHT = 22
LABEL_WIDTH = 260
PLOT_WIDTH = 640
COLOURS = {"created": "#9aa5b1", "validating": "#f0b429", "running": "#3e7cb1", "open": "#3e7cb1"}
END_COLOURS = {"completed": "#2f9e44", "failed": "#e03131", "expired": "#e8590c", "cancelled": "#868e96"}


def timeline_svg(bars: list[BatchBar]) -> str:
    """An ``<svg>`` element with one ``<g class="batch">`` per bar (no script, no external reference)."""
    times = [t for b in bars for t in (b.intent_at, b.submitted_at, b.running_at, b.ended_at) if t is not None]
    start = min(times) if times else 0.0
    span = max((max(times) - start) if times else 0.0, 1e-6)
    height = ROW_HEIGHT * (len(bars) + 1)
    rows = [_row(i, bar, start, span) for i, bar in enumerate(bars)]
    axis = (f'<text x="{LABEL_WIDTH}" y="{height - 6}" class="axis">0 s</text>'
            f'<text x="{LABEL_WIDTH + PLOT_WIDTH}" y="{height - 6}" class="axis" text-anchor="end">'
            f"{span:,.1f} s</text>")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{LABEL_WIDTH + PLOT_WIDTH + 10}" '
            f'height="{height}" role="img" aria-label="batch timeline">' + "".join(rows) + axis + "</svg>")


def _row(index: int, bar: BatchBar, start: float, span: float) -> str:
    y = index * ROW_HEIGHT
    label = f"chunk {bar.chunk}" + (f" (retry of chunk {bar.retry_of})" if bar.retry_of is not None else "")
    title = escape(f"{bar.batch_id}: {bar.rows} rows, {bar.state}" + _open_text(bar))
    parts = [f'<g class="batch" data-batch-id="{escape(bar.batch_id)}" data-state="{escape(bar.state)}">',
             f"<title>{title}</title>",
             f'<text x="0" y="{y + 15}" class="label">{escape(label)} · {escape(bar.batch_id[-12:])}</text>']
    if bar.requeued:
        parts.append(f'<rect x="{LABEL_WIDTH}" y="{y + 4}" width="{PLOT_WIDTH}" height="{ROW_HEIGHT - 8}" '
                     f'class="requeued"/><text x="{LABEL_WIDTH + 6}" y="{y + 15}" class="note">requeued '
                     f"(replaced by a later batch; times not kept)</text>")
    else:
        parts.extend(_segments(bar, y, start, span))
    parts.append("</g>")
    return "".join(parts)


def _segments(bar: BatchBar, y: float, start: float, span: float) -> list[str]:
    def x(t: float) -> float:
        return LABEL_WIDTH + (t - start) / span * PLOT_WIDTH

    phases: list[tuple[str, float | None, float | None]] = [("created", bar.intent_at, bar.submitted_at)]
    if bar.running_at is not None:
        phases += [("validating", bar.submitted_at, bar.running_at), ("running", bar.running_at, bar.ended_at)]
    else:
        phases.append(("open", bar.submitted_at, bar.ended_at))
    out = []
    for phase, begin, end in phases:
        if begin is None or end is None:
            continue
        width = max(x(end) - x(begin), 1.0)
        out.append(f'<rect x="{x(begin):.1f}" y="{y + 4}" width="{width:.1f}" height="{ROW_HEIGHT - 8}" '
                   f'fill="{COLOURS[phase]}" class="phase {phase}"/>')
    if bar.ended_at is not None:
        colour = END_COLOURS.get(bar.state, "#495057")
        out.append(f'<rect x="{x(bar.ended_at) - 2:.1f}" y="{y + 2}" width="4" height="{ROW_HEIGHT - 4}" '
                   f'fill="{colour}" class="end"/>')
    return out


def _open_text(bar: BatchBar) -> str:
    seconds = bar.seconds_open
    return "" if seconds is None else f", open {seconds:,.1f} s"
