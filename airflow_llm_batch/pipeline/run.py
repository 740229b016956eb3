"""One task's batch run: prepare or re-attach, submit under recorded intents, poll, collect, re-read.

``BatchRun`` is provider-neutral and Airflow-free. The Airflow operators drive it: ``submit`` on
the worker, ``poll`` in the trigger (through the backend only) or on the worker in sync mode,
``collect`` and ``iter_results`` on the worker after the batches end.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_llm_batch.exceptions import InputChangedError, ReattachError
from airflow_llm_batch.pipeline.backend import BatchBackend
from airflow_llm_batch.pipeline.join import join_results, read_key_index
from airflow_llm_batch.pipeline.manifest import ChunkRecord, ChunkState, Manifest, ManifestStore
from airflow_llm_batch.pipeline.parsing import OutputParser
from airflow_llm_batch.pipeline.prepare import chunk_name, prepare
from airflow_llm_batch.pipeline.render import RequestSpec
from airflow_llm_batch.pipeline.storage import AtomicWriter, StoragePath
from airflow_llm_batch.pipeline.types import BatchProgress, BatchState, RawResult, ResultRow, Usage

log = logging.getLogger(__name__)

#: how far before a recorded intent a batch may have been created (clock skew between machines)
FIND_SLACK_SECONDS = 600.0

_NO_ANSWER = {
    BatchState.EXPIRED: ("batch_expired", "the batch expired before this row was answered"),
    BatchState.CANCELLED: ("batch_cancelled", "the batch was cancelled before this row was answered"),
}


@dataclass(frozen=True)
class RunSummary:
    total: int
    succeeded: int
    failed: int
    errors_by_code: dict[str, int]
    usage: Usage
    batch_ids: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "errors_by_code": self.errors_by_code,
            "usage": self.usage.to_dict(),
            "batch_ids": self.batch_ids,
        }


class BatchRun:
    """The batches of one task run, kept in ``folder`` (a workspace path unique to the task run).

    Example::

        run = BatchRun(folder, backend, tags={"dag_id": "d", "task_id": "t", "run_id": "r"})
        manifest = run.prepare_or_load(lambda: rows, spec)
        await run.submit(manifest)
        while not all_done(await run.poll(manifest)): ...
        await run.collect(manifest, OutputParser(MyModel))
    """

    def __init__(self, folder: StoragePath, backend: BatchBackend, *, tags: Mapping[str, str]) -> None:
        self.folder = folder
        self.backend = backend
        self.tags = {k: str(v)[:500] for k, v in tags.items()}
        self.store = ManifestStore(folder)

    # -- preparing ---------------------------------------------------------------------------------
    def prepare_or_load(
        self,
        rows: Callable[[], Iterable[Mapping[str, Any]]],
        spec: RequestSpec,
        *,
        max_rows_per_chunk: int | None = None,
        carry: tuple[str, ...] = (),
    ) -> Manifest:
        """Load this run's manifest if batches may exist, else validate and write the chunks.

        ``rows`` is called once per pass (a second pass checks that a retry sees the same rows).
        """
        def _prepare(write: bool) -> Any:
            return prepare(rows(), spec, folder=self.folder, limits=self.backend.limits,
                           build_line=self.backend.request_line, custom_id_for=self.backend.custom_id_for,
                           max_rows_per_chunk=max_rows_per_chunk, carry=carry, write=write)

        existing = self.store.load()
        if existing is not None and any(c.state != ChunkState.PREPARED for c in existing.chunks):
            digest = _prepare(write=False).digest
            if digest != existing.digest:
                raise InputChangedError(
                    f"the rows or prompt differ from those already submitted for this task run "
                    f"(batches {existing.batch_ids}). Nothing new was submitted. Restore the input to "
                    f"re-attach, or delete {self.folder} (or use another workspace) to start over and pay again."
                )
            log.info("Re-attaching to %d chunk(s) recorded in %s", len(existing.chunks), self.store.path)
            return existing
        prepared = _prepare(write=True)
        manifest = Manifest(
            provider=self.backend.name,
            model=spec.model,
            run_tag=_run_tag(self.tags),
            digest=prepared.digest,
            total_rows=prepared.total_rows,
            chunks=[ChunkRecord(c.index, c.count, c.bytes, c.requests, c.keys) for c in prepared.chunks],
        )
        self.store.save(manifest)
        return manifest

    # -- submitting --------------------------------------------------------------------------------
    async def submit(self, manifest: Manifest) -> list[str]:
        """Create a batch for every chunk that has none, recording the intent first."""
        created: list[str] = []
        for chunk in manifest.chunks:
            if chunk.state == ChunkState.SUBMITTING and await self._reattach(manifest, chunk):
                continue
            if chunk.state not in (ChunkState.PREPARED, ChunkState.SUBMITTING):
                continue
            name = chunk_name(chunk.index, chunk.attempt)
            chunk.tag = chunk.tag or f"{manifest.run_tag}-{name}"
            chunk.state, chunk.intent_at = ChunkState.SUBMITTING, time.time()
            self.store.save(manifest)
            tags = {**self.tags, "chunk": name, "llm_batch_tag": chunk.tag}
            batch_id = await self.backend.submit(
                lambda chunk=chunk: (self.folder / chunk.requests).open("rb"), chunk.count, tags
            )
            chunk.batch_id, chunk.state, chunk.submitted_at = batch_id, ChunkState.SUBMITTED, time.time()
            self.store.save(manifest)
            created.append(batch_id)
            log.info("Submitted chunk %s: %d requests as batch %s", name, chunk.count, batch_id)
        return created

    async def _reattach(self, manifest: Manifest, chunk: ChunkRecord) -> bool:
        """An intent without a batch id: find the batch the crashed attempt may have created."""
        assert chunk.tag is not None and chunk.intent_at is not None
        found = await self.backend.find(chunk.tag, chunk.intent_at - FIND_SLACK_SECONDS)
        if len(found) > 1:
            raise ReattachError(
                f"{len(found)} batches carry tag {chunk.tag!r} ({found}); refusing to guess which one "
                f"holds chunk {chunk.index}. Cancel the extra ones, record the right id in "
                f"{self.store.path}, then retry."
            )
        if not found:
            log.info("No batch found for intent %s: the create never reached the provider", chunk.tag)
            return False
        chunk.batch_id, chunk.state, chunk.submitted_at = found[0], ChunkState.SUBMITTED, time.time()
        self.store.save(manifest)
        log.info("Re-attached chunk %d to batch %s found by its tag", chunk.index, found[0])
        return True

    # -- polling -----------------------------------------------------------------------------------
    async def poll(self, manifest: Manifest) -> list[BatchProgress]:
        """Poll every open batch once and record the ones that ended."""
        ids = manifest.open_batch_ids
        progress = list(await asyncio.gather(*(self.backend.progress(b) for b in ids)))
        self.record_progress(manifest, progress)
        return progress

    def record_progress(self, manifest: Manifest, progress: Iterable[BatchProgress]) -> None:
        changed = False
        for item in progress:
            chunk = manifest.chunk_for(item.batch_id)
            if chunk.state == ChunkState.SUBMITTED and item.state.is_terminal:
                chunk.state, chunk.batch_state = ChunkState.ENDED, item.state.value
                chunk.batch_errors = list(item.errors)
                changed = True
        if changed:
            self.store.save(manifest)

    # -- collecting --------------------------------------------------------------------------------
    async def collect(self, manifest: Manifest, parser: OutputParser) -> None:
        """Download, join and store the answers of every ended chunk not yet collected."""
        for chunk in manifest.chunks:
            if chunk.state != ChunkState.ENDED:
                continue
            assert chunk.batch_id is not None and chunk.batch_state is not None
            state = BatchState(chunk.batch_state)
            answers: dict[str, RawResult] = {}
            if state.has_results:
                async for answer in self.backend.results(chunk.batch_id):
                    answers[answer.custom_id] = answer
            code, message = self._no_answer_reason(chunk, state)
            rows = join_results(
                read_key_index(self.folder / chunk.keys), answers.values(), parser,
                batch_id=chunk.batch_id, attempt=chunk.attempt, missing_code=code, missing_message=message,
            )
            chunk.results = f"results/{chunk_name(chunk.index, chunk.attempt)}.jsonl"
            chunk.counts = _write_results(self.folder / chunk.results, rows)
            chunk.state = ChunkState.COLLECTED
            self.store.save(manifest)
            log.info("Collected batch %s (%s): %s", chunk.batch_id, state.value,
                     {k: v for k, v in chunk.counts.items() if not k.startswith("tokens_")})

    @staticmethod
    def _no_answer_reason(chunk: ChunkRecord, state: BatchState) -> tuple[str, str]:
        if state == BatchState.FAILED:
            first = chunk.batch_errors[0] if chunk.batch_errors else {}
            code = str(first.get("code") or "batch_failed")
            line = f" (line {first['line']})" if first.get("line") is not None else ""
            return code, f"the batch failed: {first.get('message', 'no reason given')}{line}"
        return _NO_ANSWER.get(state, ("missing_result", "the provider returned no answer for this row"))

    # -- reading -----------------------------------------------------------------------------------
    def iter_results(self, manifest: Manifest) -> Iterator[ResultRow]:
        for chunk in manifest.chunks:
            if chunk.results is None:
                continue
            with (self.folder / chunk.results).open("rb") as fh:
                for line in fh:
                    yield ResultRow.from_dict(json.loads(line))

    def summary(self, manifest: Manifest) -> RunSummary:
        counts: Counter[str] = Counter()
        for chunk in manifest.chunks:
            counts.update(chunk.counts)
        usage = Usage(counts["tokens_input"], counts["tokens_output"], counts["tokens_cached"])
        errors = {k.removeprefix("error:"): v for k, v in counts.items() if k.startswith("error:")}
        return RunSummary(
            total=manifest.total_rows,
            succeeded=counts["succeeded"],
            failed=counts["failed"],
            errors_by_code=dict(sorted(errors.items())),
            usage=usage,
            batch_ids=manifest.batch_ids,
        )


def _write_results(path: StoragePath, rows: Iterable[ResultRow]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    with AtomicWriter(path) as fh:
        for row in rows:
            fh.write((json.dumps(row.to_dict(), ensure_ascii=False, default=str) + "\n").encode())
            counts[row.status.value] += 1
            if row.error:
                counts[f"error:{row.error['code']}"] += 1
            counts["tokens_input"] += row.usage.input_tokens
            counts["tokens_output"] += row.usage.output_tokens
            counts["tokens_cached"] += row.usage.cached_input_tokens
    return dict(counts)


def _run_tag(tags: Mapping[str, str]) -> str:
    basis = json.dumps(dict(sorted(tags.items())), sort_keys=True) + f"|{time.time_ns()}"
    return "llmb-" + hashlib.sha256(basis.encode()).hexdigest()[:16]
