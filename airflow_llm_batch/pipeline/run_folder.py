"""A task run's folder read and written without any provider: manifest, results, summary, the batches
this task cancelled itself, and the results of rows answered without a batch.

Nothing here needs a backend or an SDK client, so a step that only reads or records state (the
results operator, a sensor, on_kill, re-landing) opens the folder alone.

Example::

    folder = RunFolder(run_folder_path)
    manifest = folder.load()
    if manifest is not None and manifest.is_done:
        rows, summary = folder.iter_results(manifest), folder.summary(manifest)
"""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from airflow_llm_batch.pipeline import fast_json, task_state
from airflow_llm_batch.pipeline.answered import cached_rows, repeat_rows, write_results
from airflow_llm_batch.pipeline.manifest import ChunkRecord, Manifest, ManifestStore
from airflow_llm_batch.pipeline.parsing import OutputParser
from airflow_llm_batch.pipeline.record_cost import COST_KEY
from airflow_llm_batch.pipeline.storage import StoragePath, read_json, write_json_atomically
from airflow_llm_batch.pipeline.summary import RunSummary
from airflow_llm_batch.pipeline.types import ResultRow, Usage, result_record

log = logging.getLogger(__name__)

#: bytes per read when a results file is copied as it is (ResultLines)
COPY_BLOCK = 1 << 20

#: batches this task cancelled itself (on_kill): their unanswered rows are resent on the next try
CANCELLED_FILE = "cancelled_by_task.json"


@dataclass(frozen=True)
class ResultLines:
    """A results file to land as it is (its lines are the landed records, cost included), with the
    counts of its rows (from the manifest: the file is not read to count them)."""

    path: StoragePath
    succeeded: int
    failed: int

    def copy_to(self, out: IO[bytes]) -> None:
        """Stream the file's bytes into ``out`` (a block at a time, never whole in memory)."""
        with self.path.open("rb") as fh:
            shutil.copyfileobj(fh, out, COPY_BLOCK)


class RunFolder:
    """The files of one task run (a workspace path unique to the task run)."""

    def __init__(self, folder: StoragePath) -> None:
        self.folder = folder
        self.store = ManifestStore(folder)

    def load(self) -> Manifest | None:
        return self.store.load()

    # -- batches we cancelled ourselves (on_kill) ----------------------------------------------------
    def remember_cancelled(self, batch_ids: Iterable[str]) -> None:
        """Record batches cancelled by this task (kill/clear): their unanswered rows are resent on
        the next try, whatever ``retry_codes`` says. A separate file, not the manifest: on_kill runs
        while the task's own thread may be saving the manifest."""
        ids = sorted(set(self.cancelled_by_us()) | set(batch_ids))
        write_json_atomically(self.folder / CANCELLED_FILE, ids)
        state = task_state.bound(self.folder)
        if state is not None:  # inside a task: a try on another worker sees them too
            state.put(task_state.CANCELLED_KEY, ids)

    def cancelled_by_us(self) -> list[str]:
        path = self.folder / CANCELLED_FILE
        state = task_state.bound(self.folder)
        stored = (state.get(task_state.CANCELLED_KEY) if state is not None else None) or []
        return sorted(set(read_json(path) if path.exists() else []) | set(stored))

    # -- rows answered without a batch -------------------------------------------------------------
    def finalize(self, manifest: Manifest, parser: OutputParser) -> None:
        """Once every chunk is collected, write the results of cached rows and of rows that repeat
        another row's request (they get that row's final result)."""
        if not manifest.chunks_done or manifest.is_done:
            return
        counts: Counter[str] = Counter()
        files: list[str] = []
        if manifest.cached_rows:
            files.append("results/answered-cached.jsonl")
            counts.update(write_results(self.folder / files[-1], cached_rows(self.folder, parser)))
        if manifest.follower_rows:
            files.append("results/answered-repeats.jsonl")
            leaders = self._leaders(manifest, files[:-1])
            counts.update(write_results(self.folder / files[-1], repeat_rows(self.folder, leaders)))
        manifest.answered_results, manifest.answered_counts = files, dict(counts)
        self.store.save(manifest)
        log.info("Answered without a batch: %d row(s) from the request cache, %d repeating another row",
                 manifest.cached_rows, manifest.follower_rows)

    def _leaders(self, manifest: Manifest, answered: list[str]) -> Iterator[ResultRow]:
        """The rows repeats may share: as collected (a cost priced at collect is not theirs to share)."""
        for chunk in manifest.chunks:
            if chunk.results:
                yield from self._iter_files([chunk.results], priced=chunk.priced is not None)
        yield from self._iter_files(answered)

    # -- reading -----------------------------------------------------------------------------------
    def iter_results(self, manifest: Manifest) -> Iterator[ResultRow]:
        """Every final result row: one per input row once ``manifest.is_done``; without the cost a
        results file priced at collect carries (landing prices the rows at its own price)."""
        for chunk in manifest.chunks:
            if chunk.results:
                yield from self._iter_files([chunk.results], chunk.path or "batch", chunk.priced is not None)
        yield from self._iter_files(manifest.answered_results, "cache")

    def iter_records(self, manifest: Manifest) -> Iterator[dict[str, Any]]:
        """:meth:`iter_results` as ``row.to_dict()`` records, without building the rows (for the sinks
        that write records: landing's cheaper path)."""
        for chunk in manifest.chunks:
            if chunk.results:
                yield from self.chunk_records(chunk)
        yield from self.answered_records(manifest)

    def chunk_records(self, chunk: ChunkRecord) -> Iterator[dict[str, Any]]:
        """The records of one collected chunk (see :meth:`iter_records`)."""
        assert chunk.results is not None
        return self._iter_records([chunk.results], chunk.path or "batch", chunk.priced is not None)

    def chunk_lines(self, chunk: ChunkRecord) -> ResultLines:
        """One collected chunk's results file, to land as it is (when priced at the landing price)."""
        assert chunk.results is not None
        return ResultLines(self.folder / chunk.results, chunk.counts.get("succeeded", 0),
                           chunk.counts.get("failed", 0))

    def answered_records(self, manifest: Manifest) -> Iterator[dict[str, Any]]:
        """The records of the rows answered without a batch (see :meth:`iter_records`)."""
        return self._iter_records(manifest.answered_results, "cache")

    def _iter_files(self, files: Iterable[str], answered_by: str | None = None,
                    priced: bool = False) -> Iterator[ResultRow]:
        from_dict = ResultRow.from_dict
        for name in files:
            with (self.folder / name).open("rb") as fh:
                for line in fh:
                    row = from_dict(fast_json.loads(line))
                    row.answered_by = answered_by or row.answered_by
                    if priced:
                        row.extra.pop(COST_KEY, None)
                    yield row

    def _iter_records(self, files: Iterable[str], answered_by: str | None = None,
                      priced: bool = False) -> Iterator[dict[str, Any]]:
        loads = fast_json.loads
        for name in files:
            with (self.folder / name).open("rb") as fh:
                for line in fh:
                    record = loads(line)
                    if priced:
                        record.pop(COST_KEY, None)
                    yield result_record(record, answered_by)

    @staticmethod
    def summary(manifest: Manifest) -> RunSummary:
        """What the run did, in numbers, from the manifest alone."""
        counts: Counter[str] = Counter(manifest.answered_counts)
        for chunk in manifest.chunks:
            counts.update(chunk.counts)
        errors = {k.removeprefix("error:"): v for k, v in counts.items() if k.startswith("error:")}
        return RunSummary(
            total=manifest.total_rows,
            succeeded=counts["succeeded"],
            failed=counts["failed"],
            errors_by_code=dict(sorted(errors.items())),
            usage=Usage(counts["tokens_input"], counts["tokens_output"], counts["tokens_cached"]),
            batch_ids=manifest.batch_ids,
            resubmitted_rows=sum(c.count for c in manifest.chunks if c.retry_of is not None),
            requeued_batches=sum(c.requeues for c in manifest.chunks),
            breaker=manifest.breaker,
            cached_rows=manifest.cached_rows,
            repeated_rows=manifest.follower_rows,
            sent_rows=sum(c.count for c in manifest.chunks if c.retry_of is None and not c.is_adopted),
            adopted_rows=sum(c.count for c in manifest.chunks if c.is_adopted),
            rows_by_path=_rows_by_path(manifest),
            realtime_usage=_usage(c.counts for c in manifest.chunks if c.path is not None),
            mode=manifest.mode,
            deadline_fallback=manifest.deadline_fallback,
        )


def _rows_by_path(manifest: Manifest) -> dict[str, int]:
    """Final rows per path that answered them: "batch", "realtime" (``ChunkRecord.path``) and "cache"
    (the request cache and repeats of another row of the run: not paid)."""
    rows = {"batch": 0, "realtime": 0, "cache": manifest.answered_counts.get("succeeded", 0)
            + manifest.answered_counts.get("failed", 0)}
    for chunk in manifest.chunks:
        path = chunk.path or "batch"
        rows[path] = rows.get(path, 0) + chunk.counts.get("succeeded", 0) + chunk.counts.get("failed", 0)
    return rows


def _usage(counts: Iterable[dict[str, int]]) -> Usage:
    total: Counter[str] = Counter()
    for item in counts:
        total.update(item)
    return Usage(total["tokens_input"], total["tokens_output"], total["tokens_cached"])
