"""One task's batch run: prepare or re-attach, submit under recorded intents, poll, collect, re-read.

``BatchRun`` is provider-neutral and Airflow-free. The Airflow operators drive it: ``submit`` on
the worker, ``poll`` in the trigger (through the backend only) or on the worker in sync mode,
``collect`` and ``iter_results`` on the worker after the batches end.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any

from airflow_llm_batch.exceptions import InputChangedError, ReattachError
from airflow_llm_batch.pipeline.adopt import ADOPTED_ID, adoptable, sent_fingerprints
from airflow_llm_batch.pipeline.answered import cached_rows, repeat_rows, write_results
from airflow_llm_batch.pipeline.backend import BatchBackend, FindHints
from airflow_llm_batch.pipeline.fingerprint import endpoint_identity, request_fingerprint
from airflow_llm_batch.pipeline.join import read_key_index, to_result_row
from airflow_llm_batch.pipeline.manifest import ChunkRecord, ChunkState, Manifest, ManifestStore
from airflow_llm_batch.pipeline.parsing import OutputParser
from airflow_llm_batch.pipeline.policy import Admission, RetryPolicy
from airflow_llm_batch.pipeline.prepare import chunk_name, prepare
from airflow_llm_batch.pipeline.render import RequestSpec
from airflow_llm_batch.pipeline.requeue import Resend, admission_for
from airflow_llm_batch.pipeline.retry_chunk import retry_chunk
from airflow_llm_batch.pipeline.storage import StoragePath, read_json, write_json_atomically
from airflow_llm_batch.pipeline.summary import RunSummary
from airflow_llm_batch.pipeline.types import BatchProgress, BatchState, RawResult, ResultRow, RowStatus, Usage
from airflow_llm_batch.pipeline.vanished import progress_or_gone

log = logging.getLogger(__name__)

#: batches this task cancelled itself (on_kill): their unanswered rows are resent on the next try
CANCELLED_FILE = "cancelled_by_task.json"
#: how far before a recorded intent a batch may have been created (clock skew between machines)
FIND_SLACK_SECONDS = 600.0

_NO_ANSWER = {
    BatchState.EXPIRED: ("batch_expired", "the batch expired before this row was answered"),
    BatchState.CANCELLED: ("batch_cancelled", "the batch was cancelled before this row was answered"),
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

    def __init__(
        self,
        folder: StoragePath,
        backend: BatchBackend,
        *,
        tags: Mapping[str, str],
        policy: RetryPolicy | None = None,
        admission: Admission | None = None,
        cache: Any = None,
    ) -> None:
        self.folder = folder
        self.backend = backend
        self.tags = {k: str(v)[:500] for k, v in tags.items()}
        self.store = ManifestStore(folder)
        self.policy = policy or RetryPolicy()
        self.admission = admission or Admission()
        #: the request cache (pipeline.cache.AnswerCache) or None when caching is off
        self.cache = cache

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
        reads = self.cache is not None and self.cache.mode.reads

        def _prepare(write: bool) -> Any:
            return prepare(rows(), spec, folder=self.folder, limits=self.backend.limits,
                           build_line=self.backend.request_line, custom_id_for=self.backend.custom_id_for,
                           max_rows_per_chunk=max_rows_per_chunk, carry=carry, write=write,
                           max_tokens_per_chunk=self.admission.token_budget,
                           fingerprint=self._fingerprint if self.cache is not None else None,
                           cache=self.cache if reads else None, in_flight=self._in_flight if reads else None)

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
            chunks=[*(ChunkRecord(c.index, c.count, c.bytes, c.requests, c.keys, tokens=c.tokens)
                      for c in prepared.chunks),
                    *(ChunkRecord(len(prepared.chunks) + n, a.count, a.bytes, a.requests, a.keys, tokens=a.tokens,
                                  adopted=a.batch_id) for n, a in enumerate(prepared.adopted))],
            cached_rows=prepared.cached_rows,
            follower_rows=prepared.follower_rows,
            cached_usage=prepared.cached_usage.to_dict(),
        )
        self.store.save(manifest)
        return manifest

    # -- batches we cancelled ourselves (on_kill) ----------------------------------------------------
    def remember_cancelled(self, batch_ids: Iterable[str]) -> None:
        """Record batches cancelled by this task (kill/clear): their unanswered rows are resent on
        the next try, whatever ``retry_codes`` says. A separate file, not the manifest: on_kill runs
        while the task's own thread may be saving the manifest."""
        ids = sorted(set(self._cancelled_by_us()) | set(batch_ids))
        write_json_atomically(self.folder / CANCELLED_FILE, ids)

    def _cancelled_by_us(self) -> list[str]:
        path = self.folder / CANCELLED_FILE
        return list(read_json(path)) if path.exists() else []

    def _first_custom_id(self, chunk: ChunkRecord) -> str | None:
        with (self.folder / chunk.keys).open("rb") as fh:
            first = fh.readline()
        return str(json.loads(first)["c"]) if first.strip() else None

    def _open(self, name: str) -> IO[bytes]:
        handle: IO[bytes] = (self.folder / name).open("rb")
        return handle

    def _fingerprint(self, line: dict[str, Any]) -> str:
        return request_fingerprint(self.backend.name, line, self._endpoint)

    @functools.cached_property
    def _endpoint(self) -> str:
        return endpoint_identity(self.backend)

    def _in_flight(self, fps: list[str]) -> dict[str, Any]:
        return dict(self.cache.find_in_flight(fps, max_age=self.backend.limits.results_retention_seconds))

    def _record_sent(self, chunk: ChunkRecord) -> None:
        """Tell the request cache which requests are now in flight in the chunk's batch (adopt.py)."""
        if self.cache is not None and chunk.batch_id is not None and not chunk.is_adopted:
            recorded = self.cache.record_sent(sent_fingerprints(self.folder, chunk.keys), chunk.batch_id,
                                              chunk.submitted_at or time.time())
            log.debug("Recorded %d request(s) of batch %s as in flight", recorded, chunk.batch_id)

    async def _adopt(self, manifest: Manifest, chunk: ChunkRecord) -> bool:
        """Wait on the earlier run's batch instead of sending, if it can still answer."""
        assert chunk.adopted is not None
        if not await adoptable(self.backend, chunk.adopted):
            chunk.adopted = None
            return False
        chunk.batch_id, chunk.state, chunk.submitted_at = chunk.adopted, ChunkState.SUBMITTED, time.time()
        self.store.save(manifest)
        log.info("Chunk %d: %d row(s) wait on batch %s of an earlier run instead of being sent again",
                 chunk.index, chunk.count, chunk.adopted)
        return True

    # -- submitting --------------------------------------------------------------------------------
    async def submit(self, manifest: Manifest) -> list[str]:
        """Create batches for waiting chunks, as admission allows, recording each intent first.

        Chunks left waiting (token budget or batch cap reached) are submitted by a later call,
        after open batches end. Nothing is submitted once the circuit breaker has tripped.
        """
        created: list[str] = []
        for chunk in manifest.chunks:
            if chunk.state == ChunkState.SUBMITTING and await self._reattach(manifest, chunk):
                self._record_sent(chunk)
                continue
            if chunk.state == ChunkState.PREPARED and chunk.is_adopted and await self._adopt(manifest, chunk):
                continue
            if chunk.state not in (ChunkState.PREPARED, ChunkState.SUBMITTING) or manifest.breaker:
                continue
            open_chunks = [c for c in manifest.chunks if c.state == ChunkState.SUBMITTED]
            admission = admission_for(manifest, self.admission)  # tightened by what the provider refused
            if not admission.admits(len(open_chunks), sum(c.tokens for c in open_chunks), chunk.tokens):
                continue
            name = chunk_name(chunk.index, chunk.attempt)
            chunk.tag = chunk.tag or f"{manifest.run_tag}-{name}" + (f"-q{chunk.requeues}" if chunk.requeues else "")
            chunk.state, chunk.intent_at = ChunkState.SUBMITTING, time.time()
            self.store.save(manifest)
            tags = {**self.tags, "chunk": name, "llm_batch_tag": chunk.tag}
            batch_id = await self.backend.submit(functools.partial(self._open, chunk.requests), chunk.count, tags)
            chunk.batch_id, chunk.submitted_at = batch_id, time.time()
            self._record_sent(chunk)  # before the manifest says SUBMITTED: a later run can find the batch
            chunk.state = ChunkState.SUBMITTED
            self.store.save(manifest)
            created.append(batch_id)
            log.info("Submitted chunk %s: %d requests (~%d tokens) as batch %s",
                     name, chunk.count, chunk.tokens, batch_id)
        waiting = sum(c.state == ChunkState.PREPARED for c in manifest.chunks)
        if waiting and not manifest.breaker:
            log.info("%d chunk(s) wait for admission (token budget %s, max open batches %s)",
                     waiting, self.admission.token_budget, self.admission.max_open_batches)
        return created

    async def _reattach(self, manifest: Manifest, chunk: ChunkRecord) -> bool:
        """An intent without a batch id: find the batch the crashed attempt may have created."""
        assert chunk.tag is not None and chunk.intent_at is not None
        found = await self.backend.find(chunk.tag, chunk.intent_at - FIND_SLACK_SECONDS, FindHints(
            count=chunk.count, first_custom_id=self._first_custom_id(chunk), exclude=manifest.batch_ids))
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
        progress = list(await asyncio.gather(*(progress_or_gone(self.backend, b) for b in ids)))
        self.record_progress(manifest, progress)
        return progress

    def record_progress(self, manifest: Manifest, progress: Iterable[BatchProgress]) -> None:
        changed = False
        for item in progress:
            chunk = manifest.chunk_for(item.batch_id)
            if chunk.state == ChunkState.SUBMITTED and item.state.is_terminal:
                chunk.state, chunk.batch_state = ChunkState.ENDED, item.state.value
                chunk.ended_at = time.time()
                chunk.batch_errors = list(item.errors)
                changed = True
        if changed:
            self.store.save(manifest)

    # -- collecting --------------------------------------------------------------------------------
    async def collect(self, manifest: Manifest, parser: OutputParser) -> None:
        """Download, join and store the answers of every ended chunk not yet collected.

        Rows whose failure is retryable go into a new chunk (attempt + 1) instead of the results;
        a batch refused for the enqueued-token limit goes back to the queue whole.
        """
        for chunk in list(manifest.chunks):
            if chunk.state != ChunkState.ENDED:
                continue
            assert chunk.batch_id is not None and chunk.batch_state is not None
            state = BatchState(chunk.batch_state)
            if self._requeue_if_refused(manifest, chunk, state):
                continue
            answers: dict[str, RawResult] = {}
            if state.has_results:
                async for answer in self.backend.results(chunk.batch_id):
                    answers[answer.custom_id] = answer
            self._check_breaker(manifest, chunk, answers)
            self._store_chunk_results(manifest, chunk, state, answers, parser)
        if manifest.breaker:
            self._fail_unsent(manifest, parser)

    def _fail_unsent(self, manifest: Manifest, parser: OutputParser) -> None:
        """After the breaker trips, chunks never sent still owe one result per row: failed, with why."""
        assert manifest.breaker is not None
        message = f"not submitted: the circuit breaker tripped on {manifest.breaker['code']}"
        for chunk in manifest.chunks:
            if chunk.state == ChunkState.PREPARED:
                self._store_chunk_results(manifest, chunk, BatchState.FAILED, {}, parser,
                                          reason=("not_submitted", message))

    def _requeue_if_refused(self, manifest: Manifest, chunk: ChunkRecord, state: BatchState) -> bool:
        """Refused for the enqueued-token limit, or gone (404): wait, split or send again (requeue.py)."""
        return Resend(self.folder, self.store, self.policy.max_requeues).handle(manifest, chunk, state)

    def _check_breaker(self, manifest: Manifest, chunk: ChunkRecord, answers: dict[str, RawResult]) -> None:
        failures: Counter[str] = Counter(a.error_code or "error" for a in answers.values() if not a.ok)
        trip = self.policy.breaker_trip(failures, chunk.count)
        if trip is None or manifest.breaker:
            return
        code, count = trip
        sample = next(a.error_message for a in answers.values() if a.error_code == code)
        manifest.breaker = {"code": code, "rows": count, "of": chunk.count, "batch_id": chunk.batch_id,
                            "message": (sample or "")[:300]}
        log.error("Circuit breaker: %d of %d rows of batch %s failed with %s; no more batches will be "
                  "submitted", count, chunk.count, chunk.batch_id, code)

    def _store_chunk_results(self, manifest: Manifest, chunk: ChunkRecord, state: BatchState,
                             answers: dict[str, RawResult], parser: OutputParser,
                             reason: tuple[str, str] | None = None) -> None:
        code, message = reason or self._no_answer_reason(chunk, state)
        retry_positions: list[int] = []
        retry_keys: list[dict[str, Any]] = []
        to_cache: list[tuple[str, RawResult]] = []
        cache_writes = self.cache is not None and self.cache.mode.writes
        ours = chunk.batch_id in self._cancelled_by_us()
        adopted = chunk.is_adopted  # joined on the custom_ids rows have in the adopted batch

        def retry(error_code: str | None, unanswered: bool) -> bool:
            if manifest.breaker:
                return False
            if (ours and error_code == "batch_cancelled") or (adopted and unanswered):
                return chunk.attempt < self.policy.max_attempts
            return self.policy.should_retry(error_code, chunk.attempt)

        def final_rows() -> Iterator[ResultRow]:
            for position, entry in enumerate(read_key_index(self.folder / chunk.keys)):
                answer = answers.pop(entry[ADOPTED_ID] if adopted and ADOPTED_ID in entry else entry["c"], None)
                row = to_result_row(entry, answer, parser, chunk.batch_id, code, message)
                if cache_writes and answer is not None and row.status == RowStatus.SUCCEEDED and "f" in entry:
                    to_cache.append((entry["f"], answer))
                row.attempts = chunk.attempt
                error_code = row.error["code"] if row.error else None
                if retry(error_code, answer is None):
                    retry_positions.append(position)
                    retry_keys.append(entry)
                    continue
                yield row

        name = chunk_name(chunk.index, chunk.attempt)
        results = f"results/{name}.jsonl"
        counts = write_results(self.folder / results, final_rows())
        if to_cache:
            stored = self.cache.put_many(to_cache)
            log.info("Stored %d answer(s) of chunk %s in the request cache", stored, name)
        if answers:
            log.log(logging.DEBUG if adopted else logging.WARNING,  # an adopted batch holds other rows too
                    "Ignored %d answer(s) whose custom_id is not in chunk %s", len(answers), name)
        if retry_positions:
            manifest.chunks.append(retry_chunk(self.folder, manifest, chunk, retry_positions, retry_keys))
        chunk.results, chunk.counts, chunk.state = results, counts, ChunkState.COLLECTED
        self.store.save(manifest)  # one atomic step: results, retry chunk and state together
        log.info("Collected batch %s (%s): %s%s", chunk.batch_id, state.value,
                 {k: v for k, v in counts.items() if not k.startswith("tokens_")},
                 f"; {len(retry_positions)} row(s) queued for attempt {chunk.attempt + 1}" if retry_positions else "")

    @staticmethod
    def _no_answer_reason(chunk: ChunkRecord, state: BatchState) -> tuple[str, str]:
        if state == BatchState.FAILED:
            first = chunk.batch_errors[0] if chunk.batch_errors else {}
            code = str(first.get("code") or "batch_failed")
            line = f" (line {first['line']})" if first.get("line") is not None else ""
            return code, f"the batch failed: {first.get('message', 'no reason given')}{line}"
        return _NO_ANSWER.get(state, ("missing_result", "the provider returned no answer for this row"))

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
            leaders = self._iter_files([*(c.results for c in manifest.chunks if c.results), *files[:-1]])
            counts.update(write_results(self.folder / files[-1], repeat_rows(self.folder, leaders)))
        manifest.answered_results, manifest.answered_counts = files, dict(counts)
        self.store.save(manifest)
        log.info("Answered without a batch: %d row(s) from the request cache, %d repeating another row",
                 manifest.cached_rows, manifest.follower_rows)

    def _iter_files(self, files: Iterable[str]) -> Iterator[ResultRow]:
        for name in files:
            with (self.folder / name).open("rb") as fh:
                for line in fh:
                    yield ResultRow.from_dict(json.loads(line))

    # -- reading -----------------------------------------------------------------------------------
    def iter_results(self, manifest: Manifest) -> Iterator[ResultRow]:
        """Every final result row: one per input row once ``manifest.is_done``."""
        yield from self._iter_files([*(c.results for c in manifest.chunks if c.results),
                                     *manifest.answered_results])

    def summary(self, manifest: Manifest) -> RunSummary:
        counts: Counter[str] = Counter(manifest.answered_counts)
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
            resubmitted_rows=sum(c.count for c in manifest.chunks if c.retry_of is not None),
            requeued_batches=sum(c.requeues for c in manifest.chunks),
            breaker=manifest.breaker,
            cached_rows=manifest.cached_rows,
            repeated_rows=manifest.follower_rows,
            sent_rows=sum(c.count for c in manifest.chunks if c.retry_of is None and not c.is_adopted),
            adopted_rows=sum(c.count for c in manifest.chunks if c.is_adopted),
        )


def _run_tag(tags: Mapping[str, str]) -> str:
    basis = json.dumps(dict(sorted(tags.items())), sort_keys=True) + f"|{time.time_ns()}"
    return "llmb-" + hashlib.sha256(basis.encode()).hexdigest()[:16]
