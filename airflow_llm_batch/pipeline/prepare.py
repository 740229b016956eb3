"""One streaming pass over the rows: render, validate, plan chunks and write them to the workspace.

Nothing is submitted here. If any row is invalid, the pass still reads every row (so the error lists
all the problems at once) and then raises `InvalidInputError`; no batch exists at that point.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.pipeline.adopt import AdoptedChunk
from airflow_llm_batch.pipeline.keys import KeyRegistry
from airflow_llm_batch.pipeline.render import RequestRenderer, RequestSpec, RowError
from airflow_llm_batch.pipeline.routing import AnswerLookup, InFlightLookup, RowRouter
from airflow_llm_batch.pipeline.storage import StoragePath
from airflow_llm_batch.pipeline.tokens import estimate_tokens
from airflow_llm_batch.pipeline.types import BatchLimits, LLMRequest, Usage

log = logging.getLogger(__name__)

LineBuilder = Callable[[LLMRequest], dict[str, Any]]
IdMapper = Callable[[str], str]

_MAX_LISTED_ERRORS = 20


@dataclass
class ChunkFiles:
    """Where one chunk's request lines and its custom_id -> key index are stored."""

    index: int
    count: int
    bytes: int
    requests: str
    keys: str
    tokens: int = 0


@dataclass
class PreparedInput:
    chunks: list[ChunkFiles]
    total_rows: int
    digest: str
    cached_rows: int = 0
    follower_rows: int = 0
    cached_usage: Usage = field(default_factory=Usage)
    adopted: list[AdoptedChunk] = field(default_factory=list)


def chunk_name(index: int, attempt: int = 1) -> str:
    return f"{index:05d}" if attempt == 1 else f"{index:05d}-a{attempt}"


class _ChunkWriter:
    """Streams request lines into chunk files, starting a new one at the count or byte limit."""

    def __init__(self, folder: StoragePath, limits: BatchLimits, max_rows: int | None,
                 max_tokens: int | None = None) -> None:
        self.folder = folder
        self.max_rows = min(limits.max_requests, max_rows or limits.max_requests)
        self.max_bytes = limits.max_bytes
        self.max_tokens = max_tokens
        self.chunks: list[ChunkFiles] = []
        self._req: IO[bytes] | None = None
        self._keys: IO[bytes] | None = None

    def add(self, line: bytes, index_line: bytes) -> None:
        current = self.chunks[-1] if self.chunks else None
        tokens = estimate_tokens(line)
        if (current is None or current.count >= self.max_rows or current.bytes + len(line) > self.max_bytes
                or (self.max_tokens is not None and current.tokens + tokens > self.max_tokens)):
            current = self._open_next()
        assert self._req is not None and self._keys is not None
        self._req.write(line)
        self._keys.write(index_line)
        current.count += 1
        current.bytes += len(line)
        current.tokens += tokens

    def _open_next(self) -> ChunkFiles:
        self.close()
        name = chunk_name(len(self.chunks))
        chunk = ChunkFiles(len(self.chunks), 0, 0, f"chunks/{name}.requests.jsonl", f"chunks/{name}.keys.jsonl")
        self._req = (self.folder / chunk.requests).open("wb")
        self._keys = (self.folder / chunk.keys).open("wb")
        self.chunks.append(chunk)
        return chunk

    def close(self) -> None:
        for fh in (self._req, self._keys):
            if fh is not None:
                fh.close()
        self._req = self._keys = None


def prepare(
    rows: Iterable[Mapping[str, Any]],
    spec: RequestSpec,
    *,
    folder: StoragePath,
    limits: BatchLimits,
    build_line: LineBuilder,
    custom_id_for: IdMapper = str,
    max_rows_per_chunk: int | None = None,
    carry: tuple[str, ...] = (),
    write: bool = True,
    max_tokens_per_chunk: int | None = None,
    fingerprint: Callable[[dict[str, Any]], str] | None = None,
    cache: AnswerLookup | None = None,
    in_flight: InFlightLookup | None = None,
) -> PreparedInput:
    """Render and validate every row, writing chunk files under ``folder/chunks``.

    Raises InvalidInputError naming the rows when any row is invalid; nothing is submitted.
    With ``write=False`` only the digest is computed (used to check that a retry sees the same rows).
    With ``fingerprint`` set, a row repeating an earlier row's request is not sent again, and with
    ``cache`` set, rows whose request has a stored answer are answered from it (see routing.py), and
    with ``in_flight`` set, rows whose request an earlier run sent are adopted from its batch.
    """
    renderer = RequestRenderer(spec)
    if write:
        (folder / "chunks").mkdir(parents=True, exist_ok=True)
    writer = _ChunkWriter(folder, limits, max_rows_per_chunk, max_tokens_per_chunk)
    router = RowRouter(folder, writer, fingerprint=fingerprint, cache=cache, in_flight=in_flight)
    digest = OrderFreeDigest()
    errors: list[str] = []
    reasons: Counter[str] = Counter()
    total = 0
    with KeyRegistry() as registry:
        try:
            for row_no, row in enumerate(rows):
                total += 1
                try:
                    key = renderer.key_of(row) if isinstance(row, Mapping) else ""
                    custom_id = custom_id_for(key)
                    request = renderer.render(row, custom_id, key)
                    line_doc = build_line(request)
                    line = json.dumps(line_doc, ensure_ascii=False, separators=(",", ":"))
                    data = (line + "\n").encode()
                    if len(data) > limits.max_request_bytes:
                        raise RowError(
                            f"request is {len(data):,} bytes, over the provider's limit of "
                            f"{limits.max_request_bytes:,}"
                        )
                    if max_tokens_per_chunk is not None and estimate_tokens(data) > max_tokens_per_chunk:
                        raise RowError(
                            f"request is ~{estimate_tokens(data):,} tokens, over the enqueued-token budget "
                            f"of {max_tokens_per_chunk:,}"
                        )
                except RowError as exc:
                    reasons[str(exc).split(":")[0]] += 1
                    if len(errors) < _MAX_LISTED_ERRORS:
                        errors.append(f"row {row_no}{_key_note(row, spec.key)}: {exc}")
                    continue
                registry.add(custom_id, key, row_no)
                digest.update(data)
                if errors or not write:
                    continue  # keep validating, stop writing: nothing will be submitted
                entry: dict[str, Any] = {"c": custom_id, "k": key, "n": row_no}
                if carry:
                    entry["carry"] = {col: row.get(col) for col in carry}
                router.add(data, entry, line_doc)
        finally:
            router.close()
            writer.close()
        dup_count, dups = registry.duplicates()
    for keys, row_nos in dups:
        if len(errors) < _MAX_LISTED_ERRORS:
            errors.append(_duplicate_note(keys, row_nos))
    if dup_count:
        reasons["duplicate key"] += dup_count
    if errors:
        counted = "; ".join(f"{n} x {reason}" for reason, n in reasons.most_common())
        listing = "\n  ".join(errors)
        hint = ""
        if spec.key is None and dup_count:
            hint = " (no key column is set: identical rows get the same id; set `key=`)"
        raise InvalidInputError(
            f"{sum(reasons.values())} of {total} rows are invalid ({counted}){hint}; nothing was submitted."
            f"\n  {listing}"
        )
    if total == 0:
        raise InvalidInputError("no rows to process: the input is empty; nothing was submitted.")
    log.info("Prepared %d rows: %d to send in %d chunk(s), %d answered from the cache, %d repeating "
             "another row's request, %d in flight in %d batch(es) of earlier runs", total,
             sum(c.count for c in writer.chunks), len(writer.chunks), router.cached_rows, router.follower_rows,
             router.adopted.rows, len(router.adopted.chunks))
    return PreparedInput(writer.chunks, total, digest.hexdigest(), router.cached_rows, router.follower_rows,
                         router.cached_usage, list(router.adopted.chunks.values()))


class OrderFreeDigest:
    """A digest of a multiset of request lines: the same rows in another order give the same value
    (sources such as BigQuery guarantee no order without ORDER BY), any changed row changes it."""

    _MOD = 1 << 256

    def __init__(self) -> None:
        self._sum = 0
        self._count = 0

    def update(self, data: bytes) -> None:
        self._sum = (self._sum + int.from_bytes(hashlib.sha256(data).digest(), "big")) % self._MOD
        self._count += 1

    def hexdigest(self) -> str:
        return hashlib.sha256(f"{self._count}:{self._sum:064x}".encode()).hexdigest()


def _duplicate_note(keys: list[str], row_nos: list[int]) -> str:
    rows = ", ".join(map(str, row_nos))
    if len(keys) == 1:
        return f"duplicate key {keys[0]!r} on rows {rows}"
    return (f"keys {', '.join(map(repr, keys))} (rows {rows}) map to the same provider custom_id (the "
            f"provider's id rules replace keys they do not accept): make one of them different")


def _key_note(row: Any, key_column: str | None) -> str:
    if key_column and isinstance(row, Mapping) and row.get(key_column) is not None:
        return f" (key {str(row[key_column])!r})"
    return ""
