"""A chunk's two files in the run folder: its request lines and its key index (key_index.py), and the
writer that streams rows into chunks, starting a new one at the provider's count, byte or token limit."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import IO

from airflow_llm_batch.pipeline.key_index import KeyEntry
from airflow_llm_batch.pipeline.storage import StoragePath, untracked
from airflow_llm_batch.pipeline.tokens import estimate_tokens
from airflow_llm_batch.pipeline.types import BatchLimits


def chunk_name(index: int, attempt: int = 1) -> str:
    return f"{index:05d}" if attempt == 1 else f"{index:05d}-a{attempt}"


@dataclass
class ChunkFiles:
    """Where one chunk's request lines and its custom_id -> key index are stored, and their size.

    ``adopted`` names the batch of an earlier run the chunk's rows wait on (adopt.py), else None.
    """

    index: int
    requests: str
    keys: str
    adopted: str | None = None
    count: int = 0
    bytes: int = 0
    tokens: int = 0

    def add(self, data: builtins.bytes, tokens: int | None = None) -> None:
        """Count one request line written to the chunk (``tokens``: its estimate, when known)."""
        self.count += 1
        self.bytes += len(data)
        self.tokens += estimate_tokens(data) if tokens is None else tokens


class ChunkWriter:
    """Streams request lines into chunk files, starting a new one at the count, byte or token limit."""

    def __init__(self, folder: StoragePath, limits: BatchLimits, max_rows: int | None,
                 max_tokens: int | None = None) -> None:
        self.folder = folder
        self.max_rows = min(limits.max_requests, max_rows or limits.max_requests)
        self.max_bytes = limits.max_bytes
        self.max_tokens = max_tokens
        self.chunks: list[ChunkFiles] = []
        self._req: IO[bytes] | None = None
        self._keys: IO[bytes] | None = None
        self._current: ChunkFiles | None = None  # the chunk being written: the last of ``chunks``

    def add(self, line: bytes, entry: KeyEntry, tokens: int | None = None) -> None:
        """Write one request line (``tokens``: its estimate when known, else estimated from the line)."""
        if tokens is None:
            tokens = estimate_tokens(line)
        size, current, max_tokens = len(line), self._current, self.max_tokens
        if (current is None or current.count >= self.max_rows or current.bytes + size > self.max_bytes
                or (max_tokens is not None and current.tokens + tokens > max_tokens)):
            current = self._open_next()
        assert self._req is not None and self._keys is not None
        self._req.write(line)
        self._keys.write(entry.to_line())
        current.count += 1  # ChunkFiles.add, inlined: this runs once per row
        current.bytes += size
        current.tokens += tokens

    def _open_next(self) -> ChunkFiles:
        self.close()
        name = chunk_name(len(self.chunks))
        chunk = ChunkFiles(len(self.chunks), f"chunks/{name}.requests.jsonl", f"chunks/{name}.keys.jsonl")
        self._req = untracked((self.folder / chunk.requests).open("wb"))  # no lineage call per row
        self._keys = untracked((self.folder / chunk.keys).open("wb"))
        self.chunks.append(chunk)
        self._current = chunk
        return chunk

    def close(self) -> None:
        for fh in (self._req, self._keys):
            if fh is not None:
                fh.close()
        self._req = self._keys = None
