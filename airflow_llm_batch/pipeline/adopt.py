"""Adopting another run's batch: rows whose request is already in flight (an earlier run sent it and
died) are not sent again; they wait on that batch and take its answers.

During preparation the router (routing.py) hands such rows to :class:`AdoptionWriter`, which writes
one "adopted" chunk per batch: the request lines as this run would send them, and a key index whose
entries carry ``adopted_id`` (line key ``"a"``), the custom_id the row has in the adopted batch. The
chunk enters the manifest as an ordinary chunk whose ``adopted`` field names the batch. Before
anything is sent, ``submit`` checks the batch (:func:`adoptable`): still running, completed, expired
or cancelled -> the chunk becomes SUBMITTED with that batch id, so polling, the trigger and
collecting need no new path; gone or failed -> the chunk is sent as usual. Rows the adopted batch
did not answer (cancelled, expired, or missing) get one more attempt through the ordinary retry
chunk, sent once by this run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import IO

from airflow_llm_batch.pipeline.backend import BatchBackend
from airflow_llm_batch.pipeline.chunk_files import ChunkFiles
from airflow_llm_batch.pipeline.inflight import InFlight
from airflow_llm_batch.pipeline.key_index import KeyEntry, read_key_index
from airflow_llm_batch.pipeline.storage import StoragePath, untracked
from airflow_llm_batch.pipeline.types import BatchState

log = logging.getLogger(__name__)

#: answers to a batch lookup that mean "not yours to wait on" (deleted, another account or key)
_GONE_STATUSES = frozenset({400, 401, 403, 404})


class AdoptionWriter:
    """Writes one chunk per adopted batch (a handful at most: the batches of the runs that died)."""

    def __init__(self, folder: StoragePath) -> None:
        self.folder = folder
        self.chunks: dict[str, ChunkFiles] = {}
        self._files: dict[str, tuple[IO[bytes], IO[bytes]]] = {}

    def add(self, found: InFlight, data: bytes, entry: KeyEntry, tokens: int | None = None) -> None:
        chunk = self.chunks.get(found.batch_id)
        if chunk is None:
            name = f"chunks/adopted-{len(self.chunks):04d}"
            chunk = self.chunks[found.batch_id] = ChunkFiles(len(self.chunks), f"{name}.requests.jsonl",
                                                             f"{name}.keys.jsonl", adopted=found.batch_id)
            (self.folder / "chunks").mkdir(parents=True, exist_ok=True)
            self._files[found.batch_id] = (untracked((self.folder / chunk.requests).open("wb")),
                                           untracked((self.folder / chunk.keys).open("wb")))
        requests, keys = self._files[found.batch_id]
        requests.write(data)
        keys.write(entry.adopted_as(found.custom_id).to_line())
        chunk.add(data, tokens)

    def close(self) -> None:
        for requests, keys in self._files.values():
            requests.close()
            keys.close()
        self._files.clear()

    @property
    def rows(self) -> int:
        return sum(c.count for c in self.chunks.values())


async def adoptable(backend: BatchBackend, batch_id: str) -> bool:
    """Whether ``batch_id`` can still answer: it exists for this connection and has not failed.

    Running batches are waited on; completed, expired and cancelled ones keep their answered rows.
    """
    try:
        progress = await backend.progress(batch_id)
    except Exception as exc:
        status = getattr(exc, "status_code", None) or getattr(exc, "code", None)
        if status not in _GONE_STATUSES:
            raise  # transient: a retry of the task asks again rather than paying twice
        log.warning("Cannot adopt batch %s (HTTP %s): its rows will be sent by this run", batch_id, status)
        return False
    if progress.state == BatchState.FAILED:
        log.info("Batch %s of an earlier run failed: its rows will be sent by this run", batch_id)
        return False
    return True


def sent_fingerprints(folder: StoragePath, keys: str) -> Iterator[tuple[str, str]]:
    """(fingerprint, custom_id) of each row of a chunk's key index that has a fingerprint."""
    for entry in read_key_index(folder / keys):
        if entry.fingerprint is not None:
            yield entry.fingerprint, entry.custom_id
