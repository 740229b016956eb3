"""The request cache: answers kept in the workspace by request fingerprint, so a request answered by
an earlier run (a nightly DAG, a re-run) is not paid for again.

One small JSON object per fingerprint at ``root / fp[:2] / f"{fp}.json"``, on local disk or object
storage (anything that fits :class:`~airflow_llm_batch.pipeline.storage.StoragePath`). A reader never
sees half an entry (locally it is written under a temporary name and renamed; an object store
publishes an upload whole); two runs storing the same fingerprint at once both write a complete
answer to the same request, and either one may win. Locally entries are read and written with plain
``os`` calls; on an object store lookups run in a thread pool and writes are uploaded a window at a
time, concurrently (cache_files.py).
Memory is bounded by the page the caller passes (e.g. 1,000 fingerprints at a time).
"""

from __future__ import annotations

import enum
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from airflow_llm_batch.pipeline.cache_files import (
    EntryFiles,
    check_fingerprint,
    check_fingerprints,
    entry_bytes,
    entry_header,
    timestamp,
    windows,
)
from airflow_llm_batch.pipeline.inflight import INFLIGHT_DIR, InFlight, InFlightLog
from airflow_llm_batch.pipeline.storage import StoragePath
from airflow_llm_batch.pipeline.types import FinishReason, RawResult, Usage

log = logging.getLogger(__name__)

#: version of the entry format; entries of another version are treated as unreadable
ENTRY_VERSION = 1


class CacheMode(str, enum.Enum):
    """How a run uses the request cache.

    Example::

        >>> CacheMode.parse("read").reads, CacheMode.parse("read").writes
        (True, False)
        >>> CacheMode.parse(False)
        <CacheMode.OFF: 'off'>
    """

    READ_WRITE = "read_write"
    READ = "read"
    WRITE = "write"
    OFF = "off"

    @property
    def reads(self) -> bool:
        """Whether stored answers are reused."""
        return self in (CacheMode.READ_WRITE, CacheMode.READ)

    @property
    def writes(self) -> bool:
        """Whether new answers are stored."""
        return self in (CacheMode.READ_WRITE, CacheMode.WRITE)

    @classmethod
    def parse(cls, value: str | bool | CacheMode | None) -> CacheMode:
        """A mode from its name ("read_write", "read", "write", "off"; case and "-" ignored),
        ``True`` (read_write), ``False``/``None`` (off) or a mode. Raises ValueError otherwise."""
        if isinstance(value, CacheMode):
            return value
        if value is None or value is False:
            return cls.OFF
        if value is True:
            return cls.READ_WRITE
        if isinstance(value, str):
            text = value.strip().lower().replace("-", "_")
            for mode in cls:
                if text == mode.value:
                    return mode
        raise ValueError(f"unknown cache mode {value!r}; use one of {[mode.value for mode in cls]}")


@dataclass(frozen=True)
class CachedAnswer:
    """A stored answer: what the provider returned for one request, and when it was stored.

    ``usage`` is what the request used when it was answered (what a hit saves, not what it costs).

    Example::

        >>> answer = CachedAnswer(text="positive", embedding=None, model="gpt-4o-mini",
        ...                       usage=Usage(12, 1), finish_reason="stop", stored_at=1_790_000_000.0)
        >>> answer.to_raw("row-7").ok, answer.to_raw("row-7").text
        (True, 'positive')
    """

    text: str | None
    embedding: list[float] | None
    model: str | None
    usage: Usage
    finish_reason: FinishReason | None
    stored_at: float

    def to_raw(self, custom_id: str) -> RawResult:
        """The answer as a successful result for the row ``custom_id``."""
        return RawResult(custom_id, ok=True, text=self.text, embedding=self.embedding, model=self.model,
                         usage=self.usage, finish_reason=self.finish_reason)

    @classmethod
    def from_raw(cls, raw: RawResult, stored_at: float) -> CachedAnswer:
        return cls(raw.text, raw.embedding, raw.model, raw.usage, raw.finish_reason, stored_at)

    def to_entry(self, fingerprint: str) -> dict[str, Any]:
        """The JSON object stored for ``fingerprint``."""
        return {"v": ENTRY_VERSION, "fingerprint": fingerprint, "stored_at": self.stored_at, "text": self.text,
                "embedding": self.embedding, "model": self.model,
                "usage": {k: v for k, v in self.usage.to_dict().items() if k != "total_tokens"},
                "finish_reason": self.finish_reason}

    @classmethod
    def from_entry(cls, entry: Any, fingerprint: str) -> CachedAnswer:
        """Read a stored entry; raises ValueError when it is not a valid entry for ``fingerprint``."""
        entry = entry_header(entry, version=ENTRY_VERSION, fingerprint=fingerprint, kind="a cache entry")
        stored_at, usage = timestamp(entry.get("stored_at"), "stored_at"), entry.get("usage")
        if not isinstance(usage, dict) or not all(
                isinstance(usage.get(k, 0), int) and not isinstance(usage.get(k, 0), bool)
                for k in ("input_tokens", "output_tokens", "cached_input_tokens")):
            raise ValueError("bad usage")
        text, embedding = entry.get("text"), entry.get("embedding")
        model, finish_reason = entry.get("model"), entry.get("finish_reason")
        if not all(v is None or isinstance(v, str) for v in (text, model, finish_reason)):
            raise ValueError("bad text, model or finish_reason")
        if embedding is not None and not (isinstance(embedding, list) and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in embedding)):
            raise ValueError("bad embedding")
        return cls(text, None if embedding is None else [float(x) for x in embedding], model,
                   Usage.from_dict(usage), FinishReason.parse(finish_reason), stored_at)


@dataclass(frozen=True)
class CacheStats:
    """Counts since the cache object was made: lookups that hit, missed, found an entry older than
    the TTL or an unreadable one; answers stored, and answers that could not be stored.

    Example::

        >>> CacheStats(hits=9_500, misses=500).to_dict()["hits"]
        9500
    """

    hits: int = 0
    misses: int = 0
    expired: int = 0
    corrupt: int = 0
    stored: int = 0
    failed: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class _Outcome(enum.Enum):
    HIT = "hits"
    MISS = "misses"
    EXPIRED = "expired"
    CORRUPT = "corrupt"


class AnswerCache:
    """Answers by request fingerprint under ``root`` (a local path or an ObjectStoragePath).

    Example::

        >>> import tempfile, pathlib
        >>> cache = AnswerCache(pathlib.Path(tempfile.mkdtemp()), ttl_seconds=30 * 86400)
        >>> fp = "ab" * 32
        >>> cache.put_many([(fp, RawResult("row-1", ok=True, text="yes", usage=Usage(10, 1)))])
        1
        >>> cache.get_many([fp, "cd" * 32])[fp].text
        'yes'
        >>> cache.stats.hits, cache.stats.misses
        (1, 1)
    """

    def __init__(self, root: StoragePath, *, mode: CacheMode = CacheMode.READ_WRITE,
                 ttl_seconds: float | None = None, threads: int = 16,
                 clock: Callable[[], float] = time.time) -> None:
        if ttl_seconds is not None and (isinstance(ttl_seconds, bool) or not ttl_seconds > 0):
            raise ValueError(f"ttl_seconds must be > 0 or None (no expiry), got {ttl_seconds!r}")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
        self.root: StoragePath = root
        self.mode = CacheMode.parse(mode)
        self.ttl_seconds = ttl_seconds
        self.threads = threads
        self._clock = clock
        self._lock = threading.Lock()
        self._counts = CacheStats().to_dict()
        self.in_flight = InFlightLog(root / INFLIGHT_DIR, threads=threads, clock=clock)
        self._entries = EntryFiles(root)

    def path_for(self, fingerprint: str) -> StoragePath:
        """Where the entry of ``fingerprint`` lives."""
        return self._entries.path(fingerprint)

    @property
    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(**self._counts)

    def get_many(self, fps: Sequence[str]) -> dict[str, CachedAnswer]:
        """The stored answers among ``fps`` (hits only). Entries older than the TTL and unreadable
        ones are skipped (the latter with a warning). Returns {} when the mode does not read."""
        if not self.mode.reads:
            return {}
        unique = list(dict.fromkeys(fps))
        check_fingerprints(unique)
        now = self._clock()
        found: dict[str, CachedAnswer] = {}
        counts = dict.fromkeys(_Outcome, 0)
        read = 0
        for fp, data in self._entries.read_found(unique, self.threads):  # a miss costs no step here
            read += 1
            outcome, answer = self._outcome(fp, data, now)
            counts[outcome] += 1
            if answer is not None:
                found[fp] = answer
        counts[_Outcome.MISS] += len(unique) - read
        with self._lock:
            for outcome, n in counts.items():
                self._counts[outcome.value] += n
        if counts[_Outcome.CORRUPT]:
            log.warning("Request cache: ignored %d unreadable entr(ies) of %d looked up",
                        counts[_Outcome.CORRUPT], len(unique))
        log.debug("Request cache: %d hit(s), %d miss(es), %d expired of %d looked up",
                  counts[_Outcome.HIT], counts[_Outcome.MISS], counts[_Outcome.EXPIRED], len(unique))
        return found

    def put_many(self, items: Iterable[tuple[str, RawResult]]) -> int:
        """Store the successful answers among ``items`` (fingerprint, answer); returns how many were
        stored. Failed answers are skipped; a mode that does not write stores nothing. An answer that
        cannot be written (storage error) is counted in ``stats.failed`` and logged, not raised: the
        run has its answer, only a later run loses the reuse. ``items`` is consumed a window at a
        time, so a generator of any length keeps memory flat."""
        if not self.mode.writes:
            return 0
        now = self._clock()
        stored = failed = 0
        for window in windows(((fp, raw) for fp, raw in items if raw.ok), max(64, self.threads * 8)):
            entries = [(fp, data) for fp, raw in window if (data := self._encode(fp, raw, now)) is not None]
            written = self._entries.write_many(entries, self.threads)
            stored, failed = stored + written, failed + len(window) - written
        with self._lock:
            self._counts["stored"] += stored
            self._counts["failed"] += failed
        if failed:
            log.warning("Request cache: could not store %d answer(s) (%d stored)", failed, stored)
        log.debug("Request cache: stored %d answer(s)", stored)
        return stored

    def record_sent(self, items: Iterable[tuple[str, str]], batch_id: str, sent_at: float) -> int:
        """Record (fingerprint, custom_id) pairs as sent in ``batch_id`` (see inflight.py); nothing
        when the mode does not write. Returns how many were recorded."""
        if not self.mode.writes:
            return 0
        return self.in_flight.record(items, batch_id=batch_id, sent_at=sent_at)

    def find_in_flight(self, fps: Sequence[str], max_age: float) -> dict[str, InFlight]:
        """Requests among ``fps`` sent by an earlier run less than ``max_age`` seconds ago, with the
        batch that holds them; {} when the mode does not read."""
        if not self.mode.reads:
            return {}
        return self.in_flight.find_many(fps, max_age=max_age)

    def _outcome(self, fp: str, data: bytes | Exception | None, now: float) -> tuple[_Outcome, CachedAnswer | None]:
        if isinstance(data, Exception):  # unreadable (permissions, a storage error): never fail the run for it
            return _Outcome.CORRUPT, None
        if data is None:
            return _Outcome.MISS, None
        try:
            answer = CachedAnswer.from_entry(json.loads(data), fp)
        except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return _Outcome.CORRUPT, None
        if self.ttl_seconds is not None and now - answer.stored_at > self.ttl_seconds:
            return _Outcome.EXPIRED, None
        return _Outcome.HIT, answer

    @staticmethod
    def _encode(fp: str, raw: RawResult, now: float) -> bytes | None:
        """The entry's bytes; None (counted as failed) for text that cannot be stored (not UTF-8)."""
        check_fingerprint(fp)
        try:
            return entry_bytes(CachedAnswer.from_raw(raw, now).to_entry(fp))
        except UnicodeEncodeError:
            return None
