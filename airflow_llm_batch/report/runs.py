"""Recent runs of a workspace, for ``airflow-llm-batch runs --since 7d``: rows, cost, saving, duration and
failures of every task run folder whose manifest was created in the window."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

from airflow_llm_batch.pipeline.manifest import MANIFEST_NAME
from airflow_llm_batch.pipeline.storage import StoragePath
from airflow_llm_batch.report.facts import RunFacts, read_facts

_SPAN = re.compile(r"^(\d+)\s*([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class RunLine:
    folder: str
    created_at: float
    provider: str
    model: str
    rows: int
    failed: int
    cost_usd: float | None
    saving_usd: float | None
    duration_seconds: float | None

    @classmethod
    def of(cls, facts: RunFacts, root: str) -> RunLine:
        m, s, c = facts.manifest, facts.summary, facts.cost
        name = facts.folder[len(root):].strip("/") if facts.folder.startswith(root) else facts.folder
        return cls(name, m.created_at, m.provider, m.model, s.total, s.failed, c.batch_usd, c.saving_usd,
                   facts.duration_seconds)


def as_path(location: str) -> StoragePath:
    """A workspace or run folder given as a URI (file://, s3://, gs://...) or a local path."""
    from airflow_llm_batch.sources.rows import to_path

    return to_path(location if "://" in location else f"file://{location}")


def parse_since(text: str, option: str = "--since") -> float:
    """``"7d"`` -> seconds (s, m, h, d, w); raises ValueError naming ``option`` and the accepted forms."""
    match = _SPAN.match(str(text).strip().lower())
    if not match:
        raise ValueError(f"{option} {text!r}: use a number and a unit, e.g. 90m, 12h, 7d, 2w")
    return int(match.group(1)) * _SECONDS[match.group(2)]


def run_folders(workspace: StoragePath) -> Iterator[StoragePath]:
    """Every task run folder under ``workspace`` (a folder holding manifest.json; the cache is skipped)."""
    for manifest in workspace.rglob(MANIFEST_NAME):  # type: ignore[attr-defined]
        if "_cache" not in manifest.parts:
            yield manifest.parent


def recent_runs(workspace: StoragePath, since_seconds: float, now: float | None = None) -> list[RunLine]:
    """Runs created within ``since_seconds`` of ``now``, newest first."""
    cutoff = (time.time() if now is None else now) - since_seconds
    root = str(workspace)
    lines = [RunLine.of(read_facts(folder), root) for folder in run_folders(workspace)]
    return sorted((line for line in lines if line.created_at >= cutoff), key=lambda r: -r.created_at)


def format_runs(lines: list[RunLine]) -> str:
    """A plain-text table, with totals."""
    header = f"{'created (UTC)':<17} {'rows':>8} {'failed':>7} {'cost $':>10} {'saving $':>10} {'duration':>9}  run"
    out = [header]
    for r in lines:
        when = dt.datetime.fromtimestamp(r.created_at, dt.UTC).strftime("%Y-%m-%d %H:%M")
        out.append(f"{when:<17} {r.rows:>8,} {r.failed:>7,} {_usd(r.cost_usd):>10} {_usd(r.saving_usd):>10} "
                   f"{_secs(r.duration_seconds):>9}  {r.folder} ({r.provider}/{r.model})")
    known = [r for r in lines if r.cost_usd is not None]
    out.append(f"{len(lines)} run(s), {sum(r.rows for r in lines):,} rows, {sum(r.failed for r in lines):,} failed, "
               f"cost ${sum(r.cost_usd or 0 for r in known):.4f}, saving ${sum(r.saving_usd or 0 for r in known):.4f}"
               + (f" ({len(lines) - len(known)} run(s) with an unknown price)" if len(known) < len(lines) else ""))
    return "\n".join(out)


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.4f}"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}s"
