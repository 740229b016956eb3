"""Where each valid row goes during preparation: sent in a chunk, answered from the request cache,
answered by an identical request of the same run (sent once, fanned out), or adopted from a batch
an earlier run sent and did not collect (see adopt.py).

Files written under the run folder:
- ``answered/cached.jsonl``: {"entry": key-index entry (key_index.py), "answer": stored answer} per
  cache hit
- ``answered/followers.jsonl``: {"entry": ..., "f": fingerprint} per row whose request repeats an
  earlier row's request in this run (it gets that row's final result)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import IO, Any, Protocol

from airflow_llm_batch.pipeline.adopt import AdoptionWriter
from airflow_llm_batch.pipeline.inflight import InFlight
from airflow_llm_batch.pipeline.key_index import KeyEntry
from airflow_llm_batch.pipeline.seen_requests import SeenRequests
from airflow_llm_batch.pipeline.storage import StoragePath, untracked
from airflow_llm_batch.pipeline.types import FinishReason, RawResult, Usage

CACHED_FILE = "answered/cached.jsonl"
FOLLOWERS_FILE = "answered/followers.jsonl"
PAGE = 1_000

#: looks up requests sent by earlier runs that are still in flight: fingerprints -> records
InFlightLookup = Callable[[list[str]], dict[str, InFlight]]


class AnswerLookup(Protocol):
    """The part of the request cache the router needs."""

    def get_many(self, fps: list[str]) -> dict[str, Any]: ...


class ChunkSink(Protocol):
    def add(self, line: bytes, entry: KeyEntry, tokens: int | None = None) -> None: ...


def encode(document: Any) -> bytes:
    return (json.dumps(document, ensure_ascii=False, default=str) + "\n").encode()


def answer_to_dict(answer: Any) -> dict[str, Any]:
    """A cached answer (CachedAnswer or RawResult) as plain JSON."""
    return {"text": answer.text, "embedding": answer.embedding, "model": answer.model,
            "usage": answer.usage.to_dict(), "finish_reason": answer.finish_reason}


def answer_from_dict(custom_id: str, data: dict[str, Any]) -> RawResult:
    return RawResult(custom_id, ok=True, text=data.get("text"), embedding=data.get("embedding"),
                     model=data.get("model"), usage=Usage.from_dict(data.get("usage")),
                     finish_reason=FinishReason.parse(data.get("finish_reason")))


class RowRouter:
    """Routes rows to the chunk writer, the cached file or the followers file.

    With ``fingerprint=None`` (cache off) every row is sent. Fingerprints already seen in this run
    are tracked with bounded memory (seen_requests.py), asked a page of rows at a time.
    """

    def __init__(self, folder: StoragePath, chunks: ChunkSink, *,
                 fingerprint: Callable[[dict[str, Any]], str] | None, cache: AnswerLookup | None,
                 in_flight: InFlightLookup | None = None) -> None:
        self.folder, self.chunks = folder, chunks
        self.fingerprint, self.cache, self.in_flight = fingerprint, cache, in_flight
        self.adopted = AdoptionWriter(folder)
        self.cached_rows = self.follower_rows = 0
        self.cached_usage = Usage()
        self._page: list[tuple[bytes, KeyEntry, int | None]] = []
        self._files: dict[str, IO[bytes]] = {}
        self._seen = SeenRequests() if fingerprint is not None else None

    def add(self, data: bytes, entry: KeyEntry, line: dict[str, Any] | None, tokens: int | None = None) -> None:
        """Route one row (``line``: its request's JSON object, needed only with a fingerprint and an
        ``entry`` without one; ``tokens``: the line's estimate, carried to the chunk so that it is not
        estimated again). With a fingerprint, rows are routed a page at a time."""
        if self.fingerprint is None:
            self.chunks.add(data, entry, tokens)
            return
        if entry.fingerprint is None:
            assert line is not None, "a fingerprint needs the request's JSON object"
            entry = KeyEntry(entry.custom_id, entry.key, entry.row_no, self.fingerprint(line), entry.adopted_id,
                             entry.carry)
        self._page.append((data, entry, tokens))
        if len(self._page) >= PAGE:
            self._flush()

    def _flush(self) -> None:
        if not self._page:
            return
        page, self._page = self._leaders(self._page), []
        if self.cache is None:
            for data, entry, tokens in page:
                self.chunks.add(data, entry, tokens)
            return
        hits = self.cache.get_many([_fp(entry) for _, entry, _ in page]) if page else {}
        misses: list[tuple[bytes, KeyEntry, int | None]] = []
        for data, entry, tokens in page:
            hit = hits.get(_fp(entry))
            if hit is None:
                misses.append((data, entry, tokens))
                continue
            self._write(CACHED_FILE, {"entry": entry.to_json(), "answer": answer_to_dict(hit)})
            self.cached_rows += 1
            self.cached_usage = self.cached_usage + hit.usage
        sent = self.in_flight([_fp(entry) for _, entry, _ in misses]) if self.in_flight and misses else {}
        for data, entry, tokens in misses:
            found = sent.get(_fp(entry))
            if found is None:
                self.chunks.add(data, entry, tokens)
            else:
                self.adopted.add(found, data, entry, tokens)

    def _leaders(self, page: list[tuple[bytes, KeyEntry, int | None]]) -> list[tuple[bytes, KeyEntry, int | None]]:
        """The rows of ``page`` whose request is the first of its kind in this run; the others are
        written to the followers file."""
        assert self._seen is not None
        new = self._seen.new_among([_fp(entry) for _, entry, _ in page])
        leaders = []
        for row in page:
            fp = _fp(row[1])
            if fp in new:
                del new[fp]  # the first row of this request in the run: the next ones follow it
                leaders.append(row)
            else:
                self._write(FOLLOWERS_FILE, {"entry": row[1].to_json(), "f": fp})
                self.follower_rows += 1
        return leaders

    def _write(self, name: str, document: Any) -> None:
        if name not in self._files:
            (self.folder / name).parent.mkdir(parents=True, exist_ok=True)
            self._files[name] = untracked((self.folder / name).open("wb"))
        self._files[name].write(encode(document))

    def close(self) -> None:
        try:
            self._flush()
        finally:
            for fh in self._files.values():
                fh.close()
            self._files.clear()
            self.adopted.close()
            if self._seen is not None:
                self._seen.close()


def _fp(entry: KeyEntry) -> str:
    assert entry.fingerprint is not None  # set by RowRouter.add before a row is paged
    return entry.fingerprint
