"""One streaming pass over the rows: render, validate, plan chunks and write them to the workspace.

Nothing is submitted here. If any row is invalid, the pass still reads every row (so the error lists
all the problems at once) and then raises `InvalidInputError`; no batch exists at that point.

Example::

    prepared = prepare(rows, spec, folder=run_folder, backend=backend,
                       options=PrepareOptions(max_rows_per_chunk=1_000, carry=("ticket_id",)))
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from airflow_llm_batch.pipeline import fast_json
from airflow_llm_batch.pipeline.chunk_files import ChunkFiles, ChunkWriter
from airflow_llm_batch.pipeline.key_index import KeyEntry
from airflow_llm_batch.pipeline.keys import KeyRegistry
from airflow_llm_batch.pipeline.render import RequestRenderer, RequestSpec, RowError
from airflow_llm_batch.pipeline.routing import AnswerLookup, InFlightLookup, RowRouter
from airflow_llm_batch.pipeline.row_errors import RowErrors
from airflow_llm_batch.pipeline.storage import StoragePath
from airflow_llm_batch.pipeline.tokens import estimate_document_tokens
from airflow_llm_batch.pipeline.types import BatchLimits, LLMRequest, Usage

log = logging.getLogger(__name__)


class LineFormat(Protocol):
    """What preparing needs of a backend (every ``BatchBackend`` fits): its limits, its custom_id
    rule and how one request is written as a batch line."""

    @property
    def limits(self) -> BatchLimits: ...

    def request_line(self, request: LLMRequest) -> dict[str, object]: ...

    def custom_id_for(self, key: str) -> str: ...


@dataclass(frozen=True)
class PrepareOptions:
    """How rows are planned into chunks and routed.

    ``write=False`` only computes the digest (to check that a retry sees the same rows). With
    ``fingerprint`` set, a row repeating an earlier row's request is not sent again; with ``cache``
    set, rows whose request has a stored answer are answered from it; with ``in_flight`` set, rows
    whose request an earlier run sent are adopted from its batch (see routing.py).
    """

    max_rows_per_chunk: int | None = None
    max_tokens_per_chunk: int | None = None
    carry: tuple[str, ...] = ()
    write: bool = True
    fingerprint: Callable[[dict[str, Any]], str] | None = None
    cache: AnswerLookup | None = None
    in_flight: InFlightLookup | None = None


@dataclass
class PreparedInput:
    chunks: list[ChunkFiles]
    total_rows: int
    digest: str
    cached_rows: int = 0
    follower_rows: int = 0
    cached_usage: Usage = field(default_factory=Usage)
    adopted: list[ChunkFiles] = field(default_factory=list)


@dataclass(frozen=True)
class _Line:
    """One valid row as a batch line."""

    entry: KeyEntry
    data: bytes
    document: dict[str, Any]
    tokens: int


class _LineMaker:
    """Renders one row into its batch line, raising RowError when the row cannot be sent."""

    def __init__(self, spec: RequestSpec, backend: LineFormat, options: PrepareOptions) -> None:
        self.renderer, self.backend, self.options = RequestRenderer(spec), backend, options

    def make(self, row_no: int, row: Any) -> _Line:
        key = self.renderer.key_of(row) if isinstance(row, Mapping) else ""
        custom_id = self.backend.custom_id_for(key)
        document = self.backend.request_line(self.renderer.render(row, custom_id, key))
        data = fast_json.dumps_line(document)
        tokens = self._check_size(data, document)
        carry = {col: row.get(col) for col in self.options.carry} if self.options.carry else None
        return _Line(KeyEntry(custom_id, key, row_no, carry=carry), data, document, tokens)

    def _check_size(self, data: bytes, document: dict[str, Any]) -> int:
        """The line's token estimate, once it is within the byte limit and the token budget."""
        limit, budget = self.backend.limits.max_request_bytes, self.options.max_tokens_per_chunk
        if len(data) > limit:
            raise RowError(f"request is {len(data):,} bytes, over the provider's limit of {limit:,}")
        tokens = estimate_document_tokens(document, data)
        if budget is not None and tokens > budget:
            raise RowError(f"request is ~{tokens:,} tokens, over the enqueued-token budget of {budget:,}")
        return tokens


def prepare(rows: Iterable[Mapping[str, Any]], spec: RequestSpec, *, folder: StoragePath, backend: LineFormat,
            options: PrepareOptions = PrepareOptions()) -> PreparedInput:
    """Render and validate every row, writing chunk files under ``folder/chunks``.

    Raises InvalidInputError naming the rows when any row is invalid; nothing is submitted.
    """
    if options.write:
        (folder / "chunks").mkdir(parents=True, exist_ok=True)
    lines, errors, digest = _LineMaker(spec, backend, options), RowErrors(spec.key), OrderFreeDigest()
    writer = ChunkWriter(folder, backend.limits, options.max_rows_per_chunk, options.max_tokens_per_chunk)
    router = RowRouter(folder, writer, fingerprint=options.fingerprint, cache=options.cache,
                       in_flight=options.in_flight)
    total = 0
    with KeyRegistry() as registry:
        try:
            for row_no, row in enumerate(rows):
                total += 1
                try:
                    line = lines.make(row_no, row)
                except RowError as exc:
                    errors.add(row_no, row, exc)
                    continue
                registry.add(line.entry.custom_id, line.entry.key, row_no)
                digest.update(line.data)
                if options.write and not errors:  # keep validating, stop writing: nothing will be sent
                    writer.expect(line.data, line.tokens)
                    router.add(line.data, line.entry, line.document)
        finally:
            router.close()
            writer.close()
        errors.add_duplicates(*registry.duplicates())
    errors.check(total)
    return _prepared(writer, router, total, digest.hexdigest())


def _prepared(writer: ChunkWriter, router: RowRouter, total: int, digest: str) -> PreparedInput:
    log.info("Prepared %d rows: %d to send in %d chunk(s), %d answered from the cache, %d repeating "
             "another row's request, %d in flight in %d batch(es) of earlier runs", total,
             sum(c.count for c in writer.chunks), len(writer.chunks), router.cached_rows, router.follower_rows,
             router.adopted.rows, len(router.adopted.chunks))
    return PreparedInput(writer.chunks, total, digest, router.cached_rows, router.follower_rows,
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
