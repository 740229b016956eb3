"""What the request cache knows is *in flight*: for each request fingerprint sent in a batch, which
batch holds it, under which custom_id, and when it was sent.

A run that dies after its batch was created (worker killed, run marked failed, a new manual run
after a crash) leaves its batch running at the provider. A later run of any id, against the same
endpoint (the fingerprint includes the endpoint identity), that needs the same request finds the
record and adopts that batch instead of paying again (see adopt.py).

One JSON object per sent request, written right after the batch id is known: all the requests of
one batch in one page file (inflight_pages.py); before pages, one file per fingerprint at
``{cache root}/inflight/fp[:2]/fp.json``, still read. The newest send of a request wins. Records are never deleted: once
the answer is stored, the answer cache answers first, and records older than the provider's
results retention are ignored.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_llm_batch.pipeline import cache_files as files
from airflow_llm_batch.pipeline import inflight_pages as pages
from airflow_llm_batch.pipeline.storage import StoragePath

log = logging.getLogger(__name__)

#: version of the record format; records of another version are ignored
RECORD_VERSION = 1
INFLIGHT_DIR = "inflight"


@dataclass(frozen=True)
class InFlight:
    """One sent request: the batch that holds it and its custom_id there.

    Example::

        >>> record = InFlight(batch_id="batch_1", custom_id="row-7", sent_at=1_790_000_000.0)
        >>> InFlight.from_entry(record.to_entry("ab" * 32), "ab" * 32) == record
        True
    """

    batch_id: str
    custom_id: str
    sent_at: float

    def to_entry(self, fingerprint: str) -> dict[str, Any]:
        return {"v": RECORD_VERSION, "fingerprint": fingerprint, "batch_id": self.batch_id,
                "custom_id": self.custom_id, "sent_at": self.sent_at}

    @classmethod
    def from_entry(cls, entry: Any, fingerprint: str) -> InFlight:
        """Read a stored record; raises ValueError when it is not a valid record for ``fingerprint``."""
        entry = files.entry_header(entry, version=RECORD_VERSION, fingerprint=fingerprint,
                                   kind="an in-flight record")
        batch_id, custom_id = entry.get("batch_id"), entry.get("custom_id")
        if not (isinstance(batch_id, str) and batch_id and isinstance(custom_id, str) and custom_id):
            raise ValueError("bad batch_id or custom_id")
        return cls(batch_id, custom_id, files.timestamp(entry.get("sent_at"), "sent_at"))


class InFlightLog:
    """In-flight records under ``root`` (the request cache's ``inflight`` folder).

    Example::

        >>> import tempfile, pathlib
        >>> log_ = InFlightLog(pathlib.Path(tempfile.mkdtemp()))
        >>> log_.record([("ab" * 32, "row-1")], batch_id="batch_9", sent_at=time.time())
        1
        >>> log_.find_many(["ab" * 32, "cd" * 32], max_age=3600)["ab" * 32].batch_id
        'batch_9'
    """

    def __init__(self, root: StoragePath, *, threads: int = 16, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self.threads = threads
        self._clock = clock
        self._index: pages.PageIndex | None = None
        self._entries = files.EntryFiles(root)

    def record(self, items: Iterable[tuple[str, str]], *, batch_id: str, sent_at: float) -> int:
        """Record that each (fingerprint, custom_id) of ``items`` was sent in ``batch_id``; returns
        how many records were written. A storage error is logged, never raised: the batch exists and
        this run will collect it; only a later run after a crash loses the adoption."""
        entries = (InFlight(batch_id, cid, sent_at).to_entry(fp) for fp, cid in items)  # one at a time
        written = pages.write_page(self.root, sent_at, entries)
        if written is None:
            log.warning("Request cache: could not record the requests of batch %s as in flight", batch_id)
            return 0
        return written

    def find_many(self, fps: Sequence[str], *, max_age: float) -> dict[str, InFlight]:
        """The records among ``fps`` sent less than ``max_age`` seconds ago; unreadable, foreign and
        older records are skipped."""
        unique = list(dict.fromkeys(fps))
        files.check_fingerprints(unique)
        oldest = self._clock() - max_age
        found: dict[str, InFlight] = {}
        for fp, entry in self._pages().find(unique, oldest):
            record = _record(entry, fp)
            if record is not None and record.sent_at >= oldest:
                found[fp] = record
        for fp, data in self._entries.read_found(unique, self.threads):
            record = _single(data, fp)
            if record is not None and record.sent_at >= oldest and (
                    fp not in found or record.sent_at > found[fp].sent_at):  # the newest send wins
                found[fp] = record
        return found

    def _pages(self) -> pages.PageIndex:
        if self._index is None:
            self._index = pages.PageIndex(self.root)
        return self._index


def _single(data: bytes | Exception | None, fp: str) -> InFlight | None:
    """The record of a single-record file (the format before pages), if there is a readable one."""
    if data is None or isinstance(data, Exception):  # unreadable: it only means this request is sent again
        return None
    try:
        return _record(json.loads(data), fp)
    except Exception:
        return None


def _record(entry: Any, fp: str) -> InFlight | None:
    try:
        return InFlight.from_entry(entry, fp)
    except ValueError:  # not a record of this version for fp: the request is sent again
        return None
