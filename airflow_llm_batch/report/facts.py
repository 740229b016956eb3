"""What a run report shows, read from one task run folder of the workspace (no provider call, no Airflow).

A run folder holds ``manifest.json`` (chunks, batch ids, their times and states, counts, the estimate)
and ``results/*.jsonl`` (one final row per input row). The summary is recomputed from the manifest by
the engine's own :meth:`RunFolder.summary`, and the cost with :func:`actual_cost` at the effective prices.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from airflow_llm_batch.pipeline.cost import CostReport, actual_cost
from airflow_llm_batch.pipeline.manifest import ChunkRecord, Manifest, ManifestStore
from airflow_llm_batch.pipeline.run_folder import RunFolder
from airflow_llm_batch.pipeline.storage import StoragePath
from airflow_llm_batch.pipeline.summary import RunSummary
from airflow_llm_batch.pipeline.types import Usage

#: failed rows shown as samples
SAMPLE_FAILURES = 20
#: characters of an error message (or of an answer, when asked) shown per sample
MESSAGE_CHARS = 300


@dataclass(frozen=True)
class BatchBar:
    """One batch on the timeline. Times are epoch seconds; None when not recorded."""

    batch_id: str
    chunk: int
    attempt: int
    rows: int
    state: str
    intent_at: float | None
    submitted_at: float | None
    ended_at: float | None
    requeued: bool = False  # an earlier batch of this chunk, refused or lost and sent again
    retry_of: int | None = None
    running_at: float | None = None

    @property
    def seconds_open(self) -> float | None:
        if self.submitted_at is None or self.ended_at is None:
            return None
        return max(0.0, self.ended_at - self.submitted_at)


@dataclass(frozen=True)
class FailedSample:
    key: str
    code: str
    message: str
    attempts: int
    batch_id: str | None
    text: str | None = None  # the row's answer, only when the report is asked to include text


@dataclass
class RunFacts:
    """Everything the page draws, for one task run."""

    folder: str
    manifest: Manifest
    summary: RunSummary
    cost: CostReport
    bars: list[BatchBar]
    failures: list[FailedSample] = field(default_factory=list)

    @property
    def started_at(self) -> float | None:
        times = [t for b in self.bars for t in (b.intent_at or b.submitted_at,) if t is not None]
        return min(times) if times else None

    @property
    def ended_at(self) -> float | None:
        times = [b.ended_at for b in self.bars if b.ended_at]
        return max(times) if times else None

    @property
    def duration_seconds(self) -> float | None:
        start, end = self.started_at, self.ended_at
        return None if start is None or end is None else max(0.0, end - start)

    def slowest(self, count: int = 5) -> list[BatchBar]:
        timed = [b for b in self.bars if b.seconds_open is not None]
        return sorted(timed, key=lambda b: b.seconds_open or 0.0, reverse=True)[:count]


def load_manifest(folder: StoragePath) -> Manifest:
    manifest = ManifestStore(folder).load()
    if manifest is None:
        raise FileNotFoundError(f"{folder} holds no manifest.json: not a task run folder of the workspace")
    return manifest


def read_facts(folder: StoragePath, *, include_text: bool = False) -> RunFacts:
    """Read a run folder into :class:`RunFacts` (prices: the effective table, see effective_prices)."""
    from airflow_llm_batch.operators.effective_prices import effective_price

    manifest = load_manifest(folder)
    summary = summarize(manifest)
    price, taken_on = effective_price(manifest.provider, manifest.model)
    cost = actual_cost(price, summary.usage, cached_usage=Usage.from_dict(manifest.cached_usage),
                       cached_rows=manifest.cached_rows + manifest.follower_rows, taken_on=taken_on)
    return RunFacts(str(folder), manifest, summary, cost, batch_bars(manifest),
                    failed_samples(folder, manifest, include_text=include_text))


def summarize(manifest: Manifest) -> RunSummary:
    """The engine's summary of a manifest (:meth:`RunFolder.summary` reads nothing but the manifest)."""
    return RunFolder.summary(manifest)


def batch_bars(manifest: Manifest) -> list[BatchBar]:
    """One bar per batch ever created: earlier batches of a requeued chunk first (their times were
    not kept, only their ids), then the chunk's current batch."""
    bars: list[BatchBar] = []
    for chunk in manifest.chunks:
        for old in chunk.previous_batch_ids:
            bars.append(BatchBar(old, chunk.index, chunk.attempt, chunk.count, "requeued", None, None, None,
                                 requeued=True, retry_of=chunk.retry_of))
        if chunk.batch_id:
            bars.append(_current_bar(chunk))
    return bars


def _current_bar(chunk: ChunkRecord) -> BatchBar:
    return BatchBar(chunk.batch_id or "", chunk.index, chunk.attempt, chunk.count,
                    chunk.batch_state or chunk.state, chunk.intent_at, chunk.submitted_at, chunk.ended_at,
                    retry_of=chunk.retry_of, running_at=getattr(chunk, "running_at", None))


def failed_samples(folder: StoragePath, manifest: Manifest, *, include_text: bool = False,
                   limit: int = SAMPLE_FAILURES) -> list[FailedSample]:
    """Up to ``limit`` failed rows with their error code and message; answers only with ``include_text``.

    Only the results files whose counts (in the manifest) hold failed rows are read: a run where every
    row succeeded reads none (at 1M rows, reading them all took ~4 s at the end of every run)."""
    samples: list[FailedSample] = []
    files = [c.results for c in manifest.chunks if c.results and _may_fail(c.counts)]
    if _may_fail(manifest.answered_counts):
        files += manifest.answered_results
    for name in files:
        with (folder / name).open("rb") as fh:
            for line in fh:
                row: dict[str, Any] = json.loads(line)
                if row.get("status") != "failed":
                    continue
                samples.append(_sample(row, include_text))
                if len(samples) >= limit:
                    return samples
    return samples


def _may_fail(counts: dict[str, int]) -> bool:
    """Whether a results file with these counts may hold failed rows (no counts: read it to know)."""
    return not counts or counts.get("failed", 0) > 0


def _sample(row: dict[str, Any], include_text: bool) -> FailedSample:
    error = row.get("error") or {}
    text = row.get("output") if include_text else None
    return FailedSample(str(row.get("key")), str(error.get("code", "unknown")),
                        str(error.get("message", ""))[:MESSAGE_CHARS], int(row.get("attempts") or 1),
                        row.get("batch_id"), None if text is None else str(text)[:MESSAGE_CHARS])
