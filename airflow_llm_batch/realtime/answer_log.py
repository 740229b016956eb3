"""The durable record of real-time answers: every answer is written as it arrives.

A killed or retried task reads the log back and sends only the rows it does not hold, so a request is
paid again only if it was in flight at the kill (at most ``max_concurrency`` of them) or, on object
storage (which cannot append), answered but not yet flushed (at most ``flush_every`` of them).

Layout: ``{folder}/answers-{start ns}-{random}.jsonl``, one file per runner session (names sort by
start), one JSON object per answer.
On a local workspace each line is appended and flushed at once; on object storage answers are
buffered and written as numbered segment files. A half-written last line (a kill during the write)
is skipped when reading, and a later answer for the same custom_id replaces an earlier one.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import IO, Any

from airflow_llm_batch.pipeline.storage import StoragePath, write_bytes_atomically
from airflow_llm_batch.pipeline.types import FinishReason, RawResult, Usage

LOG_PREFIX = "answers-"


def answer_to_line(answer: RawResult, attempts: int) -> bytes:
    record: dict[str, Any] = {
        "custom_id": answer.custom_id, "ok": answer.ok, "attempts": attempts,
        "text": answer.text, "embedding": answer.embedding, "model": answer.model,
        "usage": answer.usage.to_dict(), "error_code": answer.error_code, "error_message": answer.error_message,
        "finish_reason": answer.finish_reason.value if answer.finish_reason else None,
    }
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def answer_from_record(record: dict[str, Any]) -> RawResult:
    return RawResult(
        custom_id=str(record["custom_id"]), ok=bool(record["ok"]), text=record.get("text"),
        embedding=record.get("embedding"), model=record.get("model"), usage=Usage.from_dict(record.get("usage")),
        error_code=record.get("error_code"), error_message=record.get("error_message"),
        finish_reason=FinishReason.parse(record.get("finish_reason")),
    )


def _is_local(folder: StoragePath) -> bool:
    return str(getattr(folder, "protocol", "file")) in ("file", "local")


class AnswerLog:
    """Append-only answers of one task's real-time sends, readable across sessions."""

    def __init__(self, folder: StoragePath, *, flush_every: int = 200, append_in_place: bool | None = None) -> None:
        """``append_in_place``: None = decide from the folder (local folders append, object stores do not)."""
        self.folder = folder
        self.flush_every = flush_every
        self._session = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"  # names sort in session order
        self._local = _is_local(folder) if append_in_place is None else append_in_place
        self._fh: IO[bytes] | None = None
        self._buffer: list[bytes] = []
        self._segment = 0

    def answered(self) -> dict[str, RawResult]:
        """Every answer recorded so far, by custom_id (the latest one wins)."""
        return {record["custom_id"]: answer_from_record(record) for record in self._records()}

    def _records(self) -> Iterator[dict[str, Any]]:
        if not self.folder.exists():
            return
        files = sorted((p for p in self.folder.iterdir() if p.name.startswith(LOG_PREFIX)), key=lambda p: p.name)
        for path in files:
            with path.open("rb") as fh:
                for line in fh:
                    if line.endswith(b"\n"):  # a line cut by a kill has no newline: never trusted
                        yield json.loads(line)

    def append(self, answer: RawResult, attempts: int = 1) -> None:
        line = answer_to_line(answer, attempts)
        if self._local:
            self._append_local(line)
            return
        self._buffer.append(line)
        if len(self._buffer) >= self.flush_every:
            self.flush()

    def _append_local(self, line: bytes) -> None:
        if self._fh is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._fh = (self.folder / f"{LOG_PREFIX}{self._session}.jsonl").open("ab")
        self._fh.write(line)
        self._fh.flush()  # in the OS once written: a killed worker process loses nothing it answered

    def flush(self) -> None:
        """Write buffered answers as one segment (object storage); a no-op for local folders."""
        if not self._buffer:
            return
        self._segment += 1
        name = f"{LOG_PREFIX}{self._session}-{self._segment:06d}.jsonl"
        write_bytes_atomically(self.folder / name, b"".join(self._buffer))
        self._buffer.clear()

    def close(self) -> None:
        self.flush()
        if self._fh is not None:
            self._fh.close()
            self._fh = None
