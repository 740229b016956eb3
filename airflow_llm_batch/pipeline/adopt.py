"""Adopting another run's batch: rows whose request is already in flight (an earlier run sent it and
died) are not sent again; they wait on that batch and take its answers.

During preparation the router (routing.py) hands such rows to :class:`AdoptionWriter`, which writes
one "adopted" chunk per batch: the request lines as this run would send them, and a key index whose
entries carry ``"a"``, the custom_id the row has in the adopted batch. The chunk enters the manifest
as an ordinary chunk whose ``adopted`` field names the batch. Before anything is sent, ``submit``
checks the batch (:func:`adoptable`): still running, completed, expired or cancelled -> the chunk
becomes SUBMITTED with that batch id, so polling, the trigger and collecting need no new path; gone
or failed -> the chunk is sent as usual. Rows the adopted batch did not answer (cancelled, expired,
or missing) get one more attempt through the ordinary retry chunk, sent once by this run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from airflow_llm_batch.pipeline.backend import BatchBackend
from airflow_llm_batch.pipeline.inflight import InFlight
from airflow_llm_batch.pipeline.storage import StoragePath
from airflow_llm_batch.pipeline.tokens import estimate_tokens
from airflow_llm_batch.pipeline.types import BatchState

log = logging.getLogger(__name__)

#: key index field holding a row's custom_id in the adopted batch
ADOPTED_ID = "a"
#: answers to a batch lookup that mean "not yours to wait on" (deleted, another account or key)
_GONE_STATUSES = frozenset({400, 401, 403, 404})


@dataclass
class AdoptedChunk:
    """The files of the rows adopted from one batch."""

    batch_id: str
    requests: str
    keys: str
    count: int = 0
    bytes: int = 0
    tokens: int = 0


class AdoptionWriter:
    """Writes one chunk per adopted batch (a handful at most: the batches of the runs that died)."""

    def __init__(self, folder: StoragePath) -> None:
        self.folder = folder
        self.chunks: dict[str, AdoptedChunk] = {}
        self._files: dict[str, tuple[IO[bytes], IO[bytes]]] = {}

    def add(self, found: InFlight, data: bytes, entry: dict[str, Any]) -> None:
        chunk = self.chunks.get(found.batch_id)
        if chunk is None:
            name = f"chunks/adopted-{len(self.chunks):04d}"
            chunk = self.chunks[found.batch_id] = AdoptedChunk(found.batch_id, f"{name}.requests.jsonl",
                                                               f"{name}.keys.jsonl")
            (self.folder / "chunks").mkdir(parents=True, exist_ok=True)
            self._files[found.batch_id] = ((self.folder / chunk.requests).open("wb"),
                                           (self.folder / chunk.keys).open("wb"))
        requests, keys = self._files[found.batch_id]
        requests.write(data)
        keys.write((json.dumps({**entry, ADOPTED_ID: found.custom_id}, ensure_ascii=False, default=str)
                    + "\n").encode())
        chunk.count += 1
        chunk.bytes += len(data)
        chunk.tokens += estimate_tokens(data)

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
    with (folder / keys).open("rb") as fh:
        for line in fh:
            if line.strip():
                entry = json.loads(line)
                if "f" in entry:
                    yield entry["f"], entry["c"]
