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
from typing import Any, NamedTuple, Protocol

from airflow_llm_batch.pipeline import fast_json
from airflow_llm_batch.pipeline.chunk_files import ChunkFiles, ChunkWriter
from airflow_llm_batch.pipeline.compiled_line import KEY_SENTINEL, CompiledLine
from airflow_llm_batch.pipeline.fingerprint import CompiledFingerprint
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


#: rows of a run whose compiled line is checked against the slow path's before it is trusted (fewer than
#: token_sampling.EXACT_ROWS: the compiled line's token count is exact on them, as the slow path's is)
CHECKED_ROWS = 64


class _Line(NamedTuple):
    """One valid row as a batch line (``document``: its JSON object, only when a fingerprint needs it;
    a tuple: built once per row, a third of a frozen dataclass's cost)."""

    entry: KeyEntry
    data: bytes
    document: dict[str, Any] | None
    tokens: int


_new_line = tuple.__new__


class _LineMaker:
    """Renders one row into its batch line, raising RowError when the row cannot be sent.

    When only the prompt and the ids change from row to row, lines come from a compiled line
    (compiled_line.py), checked against the slow path on the first ``CHECKED_ROWS`` rows."""

    def __init__(self, spec: RequestSpec, backend: LineFormat, options: PrepareOptions) -> None:
        self.renderer, self.backend, self.options = RequestRenderer(spec), backend, options
        self.fast = self.renderer.fast_prompt
        self.compiled = CompiledLine.of(self._sentinel_line) if self.fast is not None else None
        fingerprint = options.fingerprint if self.compiled is not None else None
        self.compiled_fp = CompiledFingerprint.of(fingerprint, self._sentinel_line) if fingerprint else None
        self._to_check = CHECKED_ROWS
        self.key_of, self.custom_id_for = self.renderer.key_of, backend.custom_id_for
        # read once, not per row: with a token budget, chunks are planned by exact counts
        self.max_request_bytes, self.exact = backend.limits.max_request_bytes, options.max_tokens_per_chunk is not None

    def _sentinel_line(self, custom_id: str, prompt: str) -> dict[str, object]:
        return self.backend.request_line(self.renderer.fixed_request(custom_id, KEY_SENTINEL, prompt))

    def make(self, row_no: int, row: Any) -> _Line:
        key = self.key_of(row) if type(row) is dict or isinstance(row, Mapping) else ""
        custom_id = self.custom_id_for(key)
        try:
            line = self._compiled(row_no, row, key, custom_id) if self.compiled is not None else None
            return line if line is not None else self._slow(row_no, row, key, custom_id)
        except UnicodeEncodeError as exc:  # a lone surrogate (e.g. from a mis-decoded source) cannot be sent
            raise RowError(f"text is not valid Unicode: {exc.reason} (character {exc.start} of the rendered "
                           f"request text); clean the source column") from exc

    def _slow(self, row_no: int, row: Any, key: str, custom_id: str) -> _Line:
        document = self.backend.request_line(self.renderer.render(row, custom_id, key))
        data = fast_json.dumps_line(document)
        self._check_bytes(data)
        tokens = self._check_budget(estimate_document_tokens(document, data))
        return _Line(KeyEntry(custom_id, key, row_no, carry=self._carry(row)), data, document, tokens)

    def _compiled(self, row_no: int, row: Any, key: str, custom_id: str) -> _Line | None:
        """The row's line from the compiled line, or None when this row takes the slow path."""
        assert self.fast is not None and self.compiled is not None
        prompt = self.fast.render(row)
        if prompt is None:
            return None  # not a plain dict or a field missing: Jinja's path and errors
        if not prompt.strip():
            raise RowError("prompt renders empty")
        made = self.compiled.line_and_prompt(custom_id, prompt)
        if made is None:
            return None
        data, text = made
        if len(data) > self.max_request_bytes:
            self._check_bytes(data)
        tokens = self.compiled.tokens(prompt, len(data), self.exact)
        if self.exact:
            self._check_budget(tokens)
        fp = self.compiled_fp.of_json(text) if self.compiled_fp is not None else None
        options, document = self.options, None
        if options.fingerprint is not None and fp is None:
            document = self.backend.request_line(self.renderer.fixed_request(custom_id, key, prompt))
        entry = KeyEntry(custom_id, key, row_no, fp, carry=self._carry(row)) if options.carry else \
            KeyEntry(custom_id, key, row_no, fp)
        line = _new_line(_Line, (entry, data, document, tokens))  # _Line(...) without its Python-level __new__
        return self._checked(line, row) if self._to_check else line

    def _checked(self, line: _Line, row: Any) -> _Line:
        """The slow path's line for ``row``; the compiled line is dropped for the run if it differs."""
        self._to_check -= 1
        try:
            slow = self._slow(line.entry.row_no, row, line.entry.key, line.entry.custom_id)
        except RowError:
            self.compiled = None
            raise
        if (slow.data, slow.tokens) != (line.data, line.tokens):
            log.debug("The compiled request line differs from the backend's: not used for this run")
            self.compiled = None
        fingerprint = self.options.fingerprint
        if self.compiled_fp is not None and fingerprint is not None and slow.document is not None \
                and fingerprint(slow.document) != line.entry.fingerprint:
            log.debug("The compiled request fingerprint differs from the slow one: not used for this run")
            self.compiled_fp = None
        return slow

    def _carry(self, row: Any) -> dict[str, Any] | None:
        return {col: row.get(col) for col in self.options.carry} if self.options.carry else None

    def _check_bytes(self, data: bytes) -> None:
        limit = self.backend.limits.max_request_bytes
        if len(data) > limit:
            raise RowError(f"request is {len(data):,} bytes, over the provider's limit of {limit:,}")

    def _check_budget(self, tokens: int) -> int:
        """``tokens``, the line's estimate, once it is within the token budget."""
        budget = self.options.max_tokens_per_chunk
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
    total, make, update, write = 0, lines.make, digest.update, options.write  # bound once: the loop is hot
    with KeyRegistry() as registry:
        remember, route = registry.add, router.add
        try:
            for row_no, row in enumerate(rows):
                total += 1
                try:
                    entry, data, document, tokens = make(row_no, row)
                except RowError as exc:
                    errors.add(row_no, row, exc)
                    write = False  # keep validating, stop writing: nothing will be sent
                    continue
                remember(entry.custom_id, entry.key, row_no)
                update(data)
                if write:
                    route(data, entry, document, tokens)
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


_sha256, _from_bytes = hashlib.sha256, int.from_bytes


class OrderFreeDigest:
    """A digest of a multiset of request lines: the same rows in another order give the same value
    (sources such as BigQuery guarantee no order without ORDER BY), any changed row changes it."""

    _MOD = 1 << 256

    def __init__(self) -> None:
        self._sum = 0
        self._count = 0

    def update(self, data: bytes) -> None:
        self._sum += _from_bytes(_sha256(data).digest(), "big")  # reduced once, in hexdigest
        self._count += 1

    def hexdigest(self) -> str:
        return hashlib.sha256(f"{self._count}:{self._sum % self._MOD:064x}".encode()).hexdigest()
