"""Sending a chunk again when its batch ended without answering: refused for the provider's
enqueued-token limit (``token_limit_exceeded``), or gone from the provider (404, ``batch_not_found``).

- Refused while other batches of this task were open: the chunk goes back to the queue and waits for
  them. The refused total (open batches + this chunk, in our token estimate) is kept in
  ``Manifest.refused_tokens``; :func:`admission_for` holds back any chunk that would bring the open
  batches to it again. A requeued chunk is thus re-created only after an open batch ends, and each
  refusal lowers the learned limit (a backoff driven by batches ending, not by a clock).
- Refused with nothing of this task open: waiting cannot help. A chunk of several rows is split in
  two (the first half keeps the chunk's record, the second becomes a new chunk), and the halves
  follow the same rules; a single row fails the task with the limit and the setting to change.
- Gone (404 on a recorded batch): nothing it answered can be fetched any more, so all its rows are
  sent again, and the log says so.

Each chunk is sent again at most ``RetryPolicy.max_requeues`` times; then its rows fail with the
batch's error code.
"""

from __future__ import annotations

import dataclasses
import logging

from airflow_llm_batch.exceptions import RequestTooLargeError
from airflow_llm_batch.pipeline.chunk_files import chunk_name
from airflow_llm_batch.pipeline.key_index import first_entry
from airflow_llm_batch.pipeline.manifest import ChunkRecord, ChunkState, Manifest, ManifestStore
from airflow_llm_batch.pipeline.policy import REQUEUE_BATCH_CODES, Admission
from airflow_llm_batch.pipeline.storage import AtomicWriter, StoragePath
from airflow_llm_batch.pipeline.tokens import estimate_tokens
from airflow_llm_batch.pipeline.types import BatchState
from airflow_llm_batch.pipeline.vanished import NOT_FOUND_CODE

log = logging.getLogger(__name__)

#: (lines, bytes, estimated tokens) of one part of a split chunk file
Sizes = tuple[int, int, int]


def batch_codes(chunk: ChunkRecord) -> set[str]:
    return {str(e.get("code")) for e in chunk.batch_errors}


def admission_for(manifest: Manifest, admission: Admission) -> Admission:
    """``admission`` with its token budget lowered below the smallest total the provider refused.

    Example: ``admission_for(manifest, Admission()).admits(open_batches, open_tokens, chunk.tokens)``
    """
    if manifest.refused_tokens is None:
        return admission
    learned = max(1, manifest.refused_tokens - 1)
    budget = learned if admission.token_budget is None else min(admission.token_budget, learned)
    return dataclasses.replace(admission, token_budget=budget)


def open_when_sent(manifest: Manifest, chunk: ChunkRecord) -> list[ChunkRecord]:
    """This task's other batches that were open (and not refused themselves) when ``chunk``'s batch
    was created: created before it and not seen ended before it."""
    sent = chunk.submitted_at or 0.0
    return [c for c in manifest.chunks
            if c is not chunk and c.batch_id and c.submitted_at is not None and c.submitted_at < sent
            and (c.state == ChunkState.SUBMITTED or (c.ended_at is not None and c.ended_at > sent))
            and not batch_codes(c) & REQUEUE_BATCH_CODES]


class Resend:
    """Decides, records and logs what becomes of a chunk whose batch was refused or vanished.

    Example: ``if Resend(folder, store, policy.max_requeues).handle(manifest, chunk, state): continue``
    """

    def __init__(self, folder: StoragePath, store: ManifestStore, max_requeues: int) -> None:
        self.folder = folder
        self.store = store
        self.max_requeues = max_requeues

    def handle(self, manifest: Manifest, chunk: ChunkRecord, state: BatchState) -> bool:
        """True when the chunk goes back to the queue (whole or split); False: collect its rows."""
        codes = batch_codes(chunk)
        refused = state == BatchState.FAILED and bool(codes & REQUEUE_BATCH_CODES)
        if not refused and NOT_FOUND_CODE not in codes:
            return False
        if chunk.requeues >= self.max_requeues:
            log.warning("Chunk %d sent %d times already (%s); failing its rows", chunk.index, chunk.requeues,
                        ", ".join(sorted(codes)))
            return False
        if refused:
            return self._refused(manifest, chunk)
        batch_id, rows = chunk.batch_id, chunk.count
        back_to_queue(chunk)
        self.store.save(manifest)
        log.warning("Batch %s of chunk %d vanished: the provider answers 404 for it (its retention, or a "
                    "restart of the emulator), so none of its answers can be fetched. Sending its %d row(s) "
                    "again (requeue %d); rows it had answered before it vanished may be billed again.",
                    batch_id, chunk.index, rows, chunk.requeues)
        return True

    def _refused(self, manifest: Manifest, chunk: ChunkRecord) -> bool:
        others = open_when_sent(manifest, chunk)
        total = sum(c.tokens for c in others) + chunk.tokens
        manifest.refused_tokens = min(total, manifest.refused_tokens or total)
        batch_id = chunk.batch_id
        if others:
            back_to_queue(chunk)
            self.store.save(manifest)
            log.warning("Batch %s of chunk %d refused for the enqueued-token limit while %d other batch(es) of "
                        "this task were open (~%d tokens with them): it waits until they end (requeue %d)",
                        batch_id, chunk.index, len(others), total, chunk.requeues)
            return True
        if chunk.count > 1:
            second = split_in_two(self.folder, manifest, chunk)
            manifest.chunks.append(second)
            self.store.save(manifest)
            log.warning("Batch %s of chunk %d (~%d tokens) refused for the enqueued-token limit with no other "
                        "batch of this task open: split into chunk %d (%d rows) and chunk %d (%d rows)",
                        batch_id, chunk.index, total, chunk.index, chunk.count, second.index, second.count)
            return True
        error = self._too_large(chunk)
        back_to_queue(chunk)  # clearing the task once the limit is raised sends it again
        self.store.save(manifest)
        raise error

    def _too_large(self, chunk: ChunkRecord) -> RequestTooLargeError:
        entry = first_entry(self.folder / chunk.keys)
        key, custom_id = (entry.key, entry.custom_id) if entry is not None else (None, None)
        said = chunk.batch_errors[0].get("message") if chunk.batch_errors else None
        return RequestTooLargeError(
            f"row {key!r} (custom_id {custom_id}, ~{chunk.tokens:,} tokens by our estimate) is over "
            f"the provider's enqueued-token limit by itself: batch {chunk.batch_id} was refused with "
            f"token_limit_exceeded while no other batch of this task was open ({said or 'no message'}). One row "
            f"cannot be split further. Shorten that row's prompt, or raise the limit (usage tier); set "
            f"enqueued_token_budget to the limit so validation stops such a row before anything is sent."
        )


def back_to_queue(chunk: ChunkRecord) -> None:
    """Forget the chunk's batch (kept in ``previous_batch_ids``) so the next submit creates a new one."""
    assert chunk.batch_id is not None
    chunk.previous_batch_ids.append(chunk.batch_id)
    chunk.requeues += 1
    chunk.batch_id = chunk.tag = chunk.batch_state = None
    chunk.submitted_at = chunk.ended_at = None
    chunk.state, chunk.batch_errors = ChunkState.PREPARED, []


def split_in_two(folder: StoragePath, manifest: Manifest, chunk: ChunkRecord) -> ChunkRecord:
    """Rewrite ``chunk`` as the first half of its rows (back in the queue) and return the second half
    as a new chunk of the same attempt. The chunk's files are copied, never changed in place."""
    first = _names(f"chunks/{chunk_name(chunk.index, chunk.attempt)}-r{chunk.requeues + 1}")
    second = _names(f"chunks/{chunk_name(len(manifest.chunks), chunk.attempt)}")
    half = (chunk.count + 1) // 2
    sizes = _split_file(folder, chunk.requests, half, (first[0], second[0]))
    _split_file(folder, chunk.keys, half, (first[1], second[1]))
    back_to_queue(chunk)
    (chunk.count, chunk.bytes, chunk.tokens), (chunk.requests, chunk.keys) = sizes[0], first
    count, size, tokens = sizes[1]
    return ChunkRecord(len(manifest.chunks), count, size, *second, attempt=chunk.attempt, tokens=tokens,
                       retry_of=chunk.retry_of)


def _names(stem: str) -> tuple[str, str]:
    return f"{stem}.requests.jsonl", f"{stem}.keys.jsonl"


def _split_file(folder: StoragePath, source: str, first_lines: int, targets: tuple[str, str]) -> list[Sizes]:
    """Stream ``source`` into two files: its first ``first_lines`` lines, then the rest."""
    sizes = [[0, 0, 0], [0, 0, 0]]
    with (folder / source).open("rb") as src, AtomicWriter(folder / targets[0]) as head, \
            AtomicWriter(folder / targets[1]) as tail:
        for position, line in enumerate(src):
            part = 0 if position < first_lines else 1
            (head if part == 0 else tail).write(line)
            sizes[part][0] += 1
            sizes[part][1] += len(line)
            sizes[part][2] += estimate_tokens(line)
    return [(s[0], s[1], s[2]) for s in sizes]
