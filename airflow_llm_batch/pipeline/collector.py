"""Collecting ended batches: download the answers, trip the circuit breaker, classify each row
(join.py), then store the final rows, the retry chunk and the cache entries in one manifest save."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

from airflow_llm_batch.pipeline.answered import write_results
from airflow_llm_batch.pipeline.answers_ahead import AnswersAhead, TakenOnce
from airflow_llm_batch.pipeline.backend import BatchBackend
from airflow_llm_batch.pipeline.chunk_files import chunk_name
from airflow_llm_batch.pipeline.gc_pause import collect_young, gc_paused
from airflow_llm_batch.pipeline.join import MISSING_ANSWER, ChunkOutcome, JoinContext, RetryRule, classify_chunk
from airflow_llm_batch.pipeline.key_index import read_key_index
from airflow_llm_batch.pipeline.manifest import ChunkRecord, ChunkState, Manifest
from airflow_llm_batch.pipeline.parsing import OutputParser
from airflow_llm_batch.pipeline.policy import RetryPolicy
from airflow_llm_batch.pipeline.prices import ModelPrice
from airflow_llm_batch.pipeline.record_cost import RecordPricer, price_note
from airflow_llm_batch.pipeline.requeue import Resend
from airflow_llm_batch.pipeline.retry_chunk import retry_chunk
from airflow_llm_batch.pipeline.run_folder import RunFolder
from airflow_llm_batch.pipeline.types import BatchState, RawResult

log = logging.getLogger(__name__)

_NO_ANSWER = {
    BatchState.EXPIRED: ("batch_expired", "the batch expired before this row was answered"),
    BatchState.CANCELLED: ("batch_cancelled", "the batch was cancelled before this row was answered"),
}


def no_answer_reason(chunk: ChunkRecord, state: BatchState) -> tuple[str, str]:
    """(code, message) for the rows an ended batch did not answer."""
    if state == BatchState.FAILED:
        first = chunk.batch_errors[0] if chunk.batch_errors else {}
        code = str(first.get("code") or "batch_failed")
        line = f" (line {first['line']})" if first.get("line") is not None else ""
        return code, f"the batch failed: {first.get('message', 'no reason given')}{line}"
    return _NO_ANSWER.get(state, MISSING_ANSWER)


class Collector:
    """Turns the ended chunks of a manifest into stored results (and retry chunks)."""

    def __init__(self, run: RunFolder, backend: BatchBackend, *, policy: RetryPolicy, cache: Any = None) -> None:
        self.run, self.backend, self.policy, self.cache = run, backend, policy, cache
        #: the run's price (set by the operator): results files are written priced, as landing writes them
        self.price: ModelPrice | None = None
        #: the batches this task cancelled itself, read once per collect (None: read at each chunk)
        self._cancelled: frozenset[str] | None = None

    async def collect(self, manifest: Manifest, parser: OutputParser) -> None:
        """Download, join and store the answers of every ended chunk not yet collected.

        Rows whose failure is retryable go into a new chunk (attempt + 1) instead of the results;
        a batch refused for the enqueued-token limit goes back to the queue whole. The next chunk's
        answers download (answers_ahead.py) while a chunk is joined and written in a thread; the
        chunks are stored one at a time, in the manifest's order. The cyclic garbage collector is
        paused meanwhile (gc_pause.py).
        """
        jobs = self._to_collect(manifest)
        # once, not per chunk: a task state key never written is a 404 from the supervisor each time, and
        # under `airflow dags test` the exception it raises in-process leaves a reference cycle through its
        # frames up to the chunk's join, held until the next young collection
        self._cancelled = frozenset(self.run.cancelled_by_us())
        try:
            with gc_paused():  # a chunk's held answers would make the collector walk the whole heap again and again
                await self._collect_jobs(manifest, jobs, parser)
        finally:
            self._cancelled = None
        if manifest.breaker:
            self._fail_unsent(manifest, parser)

    async def _collect_jobs(self, manifest: Manifest, jobs: list[tuple[ChunkRecord, BatchState]],
                            parser: OutputParser) -> None:
        async with AnswersAhead(self.backend, [(c.batch_id or "", s.has_results) for c, s in jobs]) as ahead:
            for chunk, state in jobs:
                answers = await ahead.next()
                self._check_breaker(manifest, chunk, answers)
                await asyncio.to_thread(self.store_chunk, manifest, chunk, answers, parser,
                                        no_answer_reason(chunk, state))
                del answers  # the join took (and freed) its answers one by one
                collect_young()  # the cycles made while this chunk was stored: memory stays flat under the pause

    def _to_collect(self, manifest: Manifest) -> list[tuple[ChunkRecord, BatchState]]:
        """The ended chunks whose rows are collected now (a refused or vanished batch is sent again)."""
        jobs: list[tuple[ChunkRecord, BatchState]] = []
        for chunk in list(manifest.chunks):
            if chunk.state != ChunkState.ENDED:
                continue
            assert chunk.batch_id is not None and chunk.batch_state is not None
            state = BatchState(chunk.batch_state)
            if Resend(self.run.folder, self.run.store, self.policy.max_requeues).handle(manifest, chunk, state):
                continue  # refused for the enqueued-token limit, or gone: wait, split or send again
            jobs.append((chunk, state))
        return jobs

    def _fail_unsent(self, manifest: Manifest, parser: OutputParser) -> None:
        """After the breaker trips, chunks never sent still owe one result per row: failed, with why."""
        assert manifest.breaker is not None
        message = f"not submitted: the circuit breaker tripped on {manifest.breaker['code']}"
        for chunk in manifest.chunks:
            if chunk.state == ChunkState.PREPARED:
                self.store_chunk(manifest, chunk, {}, parser, ("not_submitted", message))

    def _check_breaker(self, manifest: Manifest, chunk: ChunkRecord, answers: Mapping[str, RawResult]) -> None:
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

    def context(self, manifest: Manifest, chunk: ChunkRecord, no_answer: tuple[str, str]) -> JoinContext:
        """How this chunk's rows are joined and which of them are retried."""
        cancelled = self._cancelled if self._cancelled is not None else self.run.cancelled_by_us()
        rule = RetryRule(self.policy, breaker=bool(manifest.breaker),
                         cancelled_by_us=chunk.batch_id is not None and chunk.batch_id in cancelled)
        writes = self.cache is not None and self.cache.mode.writes
        pricer = RecordPricer(self.price) if self.price is not None else None  # priced as write_results does
        return JoinContext(chunk.batch_id, chunk.attempt, no_answer, adopted=chunk.is_adopted, retry=rule,
                           cache_answers=writes, answered_by=(chunk.path or "batch") if pricer else "batch",
                           pricer=pricer)

    def store_chunk(self, manifest: Manifest, chunk: ChunkRecord, answers: Mapping[str, RawResult],
                    parser: OutputParser, no_answer: tuple[str, str]) -> None:
        """Classify the chunk's rows, write its results, queue its retry chunk, fill the cache."""
        folder, name = self.run.folder, chunk_name(chunk.index, chunk.attempt)
        if chunk.is_adopted and isinstance(answers, TakenOnce):  # its rows may share an earlier batch's answer
            answers = answers.unconsumed()
        outcome = classify_chunk(read_key_index(folder / chunk.keys), answers, parser,
                                 self.context(manifest, chunk, no_answer))
        results = f"results/{name}.jsonl"
        counts = write_results(folder / results, outcome.final_records(), price=self.price,
                               answered_by=chunk.path or "batch")
        self._store_answers(outcome, chunk, name)
        if outcome.retry:
            manifest.chunks.append(retry_chunk(folder, manifest, chunk, outcome.retry))
        chunk.results, chunk.counts, chunk.state = results, counts, ChunkState.COLLECTED
        chunk.priced = price_note(self.price)
        self.run.store.save(manifest)  # one atomic step: results, retry chunk and state together
        log.info("Collected batch %s (%s): %s%s", chunk.batch_id, chunk.batch_state or "not sent",
                 {k: v for k, v in counts.items() if not k.startswith("tokens_")},
                 f"; {len(outcome.retry)} row(s) queued for attempt {chunk.attempt + 1}" if outcome.retry else "")

    def _store_answers(self, outcome: ChunkOutcome, chunk: ChunkRecord, name: str) -> None:
        if outcome.to_cache:
            stored = self.cache.put_many(outcome.to_cache)
            log.info("Stored %d answer(s) of chunk %s in the request cache", stored, name)
        if outcome.unmatched:
            log.log(logging.DEBUG if chunk.is_adopted else logging.WARNING,  # an adopted batch holds other rows
                    "Ignored %d answer(s) whose custom_id is not in chunk %s", outcome.unmatched, name)
