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

#: a row being routed: its line, key index entry and token estimate
_Row = tuple[bytes, KeyEntry, int | None]
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
        self._page: list[_Row] = []
        self._fps: list[str] = []
        self._files: dict[str, IO[bytes]] = {}
        self._seen = SeenRequests() if fingerprint is not None else None

    def add(self, data: bytes, entry: KeyEntry, line: dict[str, Any] | None, tokens: int | None = None) -> None:
        """Route one row (``line``: its request's JSON object, needed only with a fingerprint and an
        ``entry`` without one; ``tokens``: the line's estimate, carried to the chunk so that it is not
        estimated again). With a fingerprint, rows are routed a page at a time."""
        if self.fingerprint is None:
            self.chunks.add(data, entry, tokens)
            return
        fp = entry.fingerprint
        if fp is None:
            assert line is not None, "a fingerprint needs the request's JSON object"
            fp = self.fingerprint(line)
            entry = KeyEntry(entry.custom_id, entry.key, entry.row_no, fp, entry.adopted_id, entry.carry)
        self._page.append((data, entry, tokens))
        self._fps.append(fp)  # beside the page: read once here, not again at each step of the flush
        if len(self._fps) >= PAGE:
            self._flush()

    def _flush(self) -> None:
        if not self._page:
            return
        page, fps = self._leaders(self._page, self._fps)
        self._page, self._fps = [], []
        sent = None
        if self.cache is not None and page:  # in-flight records are asked only along with the cache
            page, fps = self._answered(page, fps)
            sent = self.in_flight(fps) if self.in_flight is not None and fps else None
        add = self.chunks.add
        if not sent:  # most pages: nothing of them in flight
            for data, entry, tokens in page:
                add(data, entry, tokens)
            return
        for row, fp in zip(page, fps, strict=True):
            found = sent.get(fp)
            if found is None:
                add(*row)
            else:
                self.adopted.add(found, *row)

    def _answered(self, page: list[_Row], fps: list[str]) -> tuple[list[_Row], list[str]]:
        """The rows of ``page`` (and their fingerprints) without a stored answer; the others are
        written to the cached file."""
        assert self.cache is not None
        hits = self.cache.get_many(fps)
        if not hits:
            return page, fps
        misses, missed = [], []
        for row, fp in zip(page, fps, strict=True):
            hit = hits.get(fp)
            if hit is None:
                misses.append(row)
                missed.append(fp)
                continue
            self._write(CACHED_FILE, {"entry": row[1].to_json(), "answer": answer_to_dict(hit)})
            self.cached_rows += 1
            self.cached_usage = self.cached_usage + hit.usage
        return misses, missed

    def _leaders(self, page: list[_Row], fps: list[str]) -> tuple[list[_Row], list[str]]:
        """The rows of ``page`` (and their fingerprints) whose request is the first of its kind in this
        run; the others are written to the followers file."""
        assert self._seen is not None
        new = self._seen.new_among(fps)
        if len(new) == len(fps):  # most pages: no request repeated
            return page, fps
        leaders, firsts = [], []
        for row, fp in zip(page, fps, strict=True):
            if fp in new:
                del new[fp]  # the first row of this request in the run: the next ones follow it
                leaders.append(row)
                firsts.append(fp)
            else:
                self._write(FOLLOWERS_FILE, {"entry": row[1].to_json(), "f": fp})
                self.follower_rows += 1
        return leaders, firsts

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

