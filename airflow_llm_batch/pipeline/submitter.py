"""Sending a run's chunks: admission, the intent recorded before each create, re-attaching to a batch
a crashed try may have created, and adopting an earlier run's batch instead of sending.

Every step saves the manifest before the next call that could cost money, so that a crash at any
point leaves a record a later try can act on without paying twice (see manifest.py's states).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping
from typing import IO, Any

from airflow_llm_batch.exceptions import ReattachError
from airflow_llm_batch.pipeline.adopt import adoptable, sent_fingerprints
from airflow_llm_batch.pipeline.backend import BatchBackend, FindHints
from airflow_llm_batch.pipeline.chunk_files import chunk_name
from airflow_llm_batch.pipeline.key_index import first_entry
from airflow_llm_batch.pipeline.manifest import ChunkRecord, ChunkState, Manifest, ManifestStore
from airflow_llm_batch.pipeline.policy import Admission
from airflow_llm_batch.pipeline.requeue import admission_for
from airflow_llm_batch.pipeline.storage import StoragePath

log = logging.getLogger(__name__)

#: how far before a recorded intent a batch may have been created (clock skew between machines)
FIND_SLACK_SECONDS = 600.0


class Submitter:
    """Creates the batches of one run's manifest through ``backend``, as ``admission`` allows.

    ``cache`` (pipeline.cache.AnswerCache or None) is told which requests each new batch holds.
    """

    def __init__(self, folder: StoragePath, backend: BatchBackend, store: ManifestStore, *,
                 tags: Mapping[str, str], admission: Admission, cache: Any = None) -> None:
        self.folder, self.backend, self.store = folder, backend, store
        self.tags, self.admission, self.cache = dict(tags), admission, cache

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
            if chunk.path is not None:  # answered in real time (realtime_chunks.py): never a batch
                continue
            if chunk.state not in (ChunkState.PREPARED, ChunkState.SUBMITTING) or manifest.breaker:
                continue
            if self._admits(manifest, chunk):
                created.append(await self._create(manifest, chunk))
        waiting = sum(c.state == ChunkState.PREPARED for c in manifest.chunks)
        if waiting and not manifest.breaker:
            log.info("%d chunk(s) wait for admission (token budget %s, max open batches %s)",
                     waiting, self.admission.token_budget, self.admission.max_open_batches)
        return created

    def _admits(self, manifest: Manifest, chunk: ChunkRecord) -> bool:
        open_chunks = [c for c in manifest.chunks if c.state == ChunkState.SUBMITTED]
        admission = admission_for(manifest, self.admission)  # tightened by what the provider refused
        return admission.admits(len(open_chunks), sum(c.tokens for c in open_chunks), chunk.tokens)

    async def _create(self, manifest: Manifest, chunk: ChunkRecord) -> str:
        """Record the intent, create the batch, record its id."""
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
        log.info("Submitted chunk %s: %d requests (~%d tokens) as batch %s",
                 name, chunk.count, chunk.tokens, batch_id)
        return batch_id

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

    def _record_sent(self, chunk: ChunkRecord) -> None:
        """Tell the request cache which requests are now in flight in the chunk's batch (adopt.py)."""
        if self.cache is not None and chunk.batch_id is not None and not chunk.is_adopted:
            recorded = self.cache.record_sent(sent_fingerprints(self.folder, chunk.keys), chunk.batch_id,
                                              chunk.submitted_at or time.time())
            log.debug("Recorded %d request(s) of batch %s as in flight", recorded, chunk.batch_id)

    def _first_custom_id(self, chunk: ChunkRecord) -> str | None:
        first = first_entry(self.folder / chunk.keys)
        return None if first is None else first.custom_id

    def _open(self, name: str) -> IO[bytes]:
        handle: IO[bytes] = (self.folder / name).open("rb")
        return handle
