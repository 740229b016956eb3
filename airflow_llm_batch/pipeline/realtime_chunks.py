"""Answering prepared chunks in real time, then joining the answers exactly as a batch's results.

Real-time shares everything before and after the send with batch mode: preparing (validation, the
request cache, in-run repeats, chunk files, the manifest) and collecting (``Collector.store_chunk``:
the join by custom_id, parsing, retry chunks, cache writes, result files and counts). Only the send
differs: each line of a chunk file goes through the backend's ``realtime_send`` in a
:class:`~airflow_llm_batch.realtime.runner.RealtimeRunner`.

Durability: :func:`claim_for_realtime` records ``path="realtime"`` on the chunks before the first send
(a later try never creates a batch for them, and a chunk with a batch intent is never claimed), and
the answers go to an :class:`~airflow_llm_batch.realtime.answer_log.AnswerLog` per attempt under
``{run folder}/realtime/a{attempt}``. A killed or retried try re-reads it and sends only unanswered rows.

Example::

    claim_for_realtime(run.folder, manifest, store)
    report = await answer_in_realtime(run, manifest, parser, RunnerSettings(max_concurrency=16))
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any, Protocol

from airflow_llm_batch.pipeline.join import MISSING_ANSWER
from airflow_llm_batch.pipeline.key_index import read_key_index
from airflow_llm_batch.pipeline.manifest import ChunkRecord, ChunkState, Manifest, ManifestStore
from airflow_llm_batch.pipeline.parsing import OutputParser
from airflow_llm_batch.pipeline.run import BatchRun
from airflow_llm_batch.pipeline.storage import StoragePath
from airflow_llm_batch.pipeline.tokens import estimate_tokens
from airflow_llm_batch.pipeline.types import RawResult
from airflow_llm_batch.realtime.answer_log import AnswerLog
from airflow_llm_batch.realtime.runner import RealtimeRequest, RealtimeRunner, RunnerReport, RunnerSettings

log = logging.getLogger(__name__)

#: ``ChunkRecord.path`` of a chunk answered in real time
REALTIME = "realtime"


class RealtimeSender(Protocol):
    async def realtime_send(self, request_line: dict[str, Any]) -> RawResult: ...


def claim_for_realtime(manifest: Manifest, store: ManifestStore) -> int:
    """Give every chunk with no batch intent to real-time (saved before any send); the rows claimed.

    A chunk adopted from another run's batch (the request cache found its rows in flight there) is not
    claimed: that batch is paid for already, so the task waits for it rather than pay for its rows
    again."""
    claimed = 0
    for chunk in manifest.chunks:
        if chunk.state == ChunkState.PREPARED and chunk.path is None and not chunk.adopted:
            chunk.path = REALTIME
            claimed += chunk.count
    store.save(manifest)
    return claimed


def pending(manifest: Manifest) -> list[ChunkRecord]:
    """The real-time chunks not answered yet (their retry chunks included)."""
    return [c for c in manifest.chunks if c.path == REALTIME and c.state == ChunkState.PREPARED]


def requests_of(folder: StoragePath, chunks: list[ChunkRecord]) -> Iterator[RealtimeRequest]:
    """The chunks' request lines, each with its row's custom_id (from the key index, same order)."""
    for chunk in chunks:
        with (folder / chunk.requests).open("rb") as lines:
            for entry, line in zip(read_key_index(folder / chunk.keys), lines, strict=True):
                yield RealtimeRequest(entry.custom_id, json.loads(line), tokens=estimate_tokens(line))


async def answer_in_realtime(run: BatchRun, manifest: Manifest, parser: OutputParser,
                             settings: RunnerSettings) -> RunnerReport:
    """Send every pending real-time chunk, then store each one's rows (and retry chunks, sent next).

    Stops at a tripped circuit breaker: nothing more is sent, the chunks stay pending (a later try
    resumes them from the answer log) and the report says why."""
    sender: RealtimeSender = run.backend  # type: ignore[assignment]
    transport = getattr(run.backend, "realtime", None)
    if transport is not None:  # the raw send's socket cap follows the run's concurrency
        transport.connections = settings.max_concurrency
    report = RunnerReport()
    while chunks := pending(manifest):
        attempt = min(c.attempt for c in chunks)
        batch = [c for c in chunks if c.attempt == attempt]
        answers = AnswerLog(run.folder / "realtime" / f"a{attempt}")
        runner = RealtimeRunner(lambda request: sender.realtime_send(request.body), settings, answers)
        report = await runner.run(requests_of(run.folder, batch), sum(c.count for c in batch))
        log.info("Real-time attempt %d: %s", attempt, report.to_dict())
        if report.breaker is not None:
            return report
        store_answers(run, manifest, batch, answers.answered(), parser)
    return report


def store_answers(run: BatchRun, manifest: Manifest, chunks: list[ChunkRecord], answers: dict[str, RawResult],
                  parser: OutputParser) -> None:
    """Join each chunk's answers as its batch results would be; retry chunks stay real-time."""
    for chunk in chunks:
        own = {e.custom_id: answers[e.custom_id] for e in read_key_index(run.folder / chunk.keys)
               if e.custom_id in answers}
        chunk.state, chunk.batch_state = ChunkState.ENDED, "completed"
        run.collector.store_chunk(manifest, chunk, own, parser, MISSING_ANSWER)
    for chunk in manifest.chunks:
        if chunk.state == ChunkState.PREPARED and chunk.retry_of is not None \
                and manifest.chunks[chunk.retry_of].path == REALTIME:
            chunk.path = REALTIME
    run.store.save(manifest)
