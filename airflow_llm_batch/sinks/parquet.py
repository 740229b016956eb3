"""Results as Parquet, streamed in row groups (memory bounded by ``row_group_size`` rows).

The columns mirror the JSONL records (``ResultRow.to_dict()``), typed:

``key, status, output`` string; ``parsed`` a struct typed from the response schema (same mapping
as the BigQuery sink: see :mod:`airflow_llm_batch.google.bq_schema`; JSON-typed parts as JSON
text), or JSON text when there is no schema; ``error`` struct<code, message>; ``usage``
struct<input_tokens, output_tokens, cached_input_tokens, total_tokens>; ``model, batch_id,
custom_id`` string; ``attempts`` int64; ``cached`` bool; ``answered_by`` string (the path that answered the
row: "batch", "realtime" or "cache"); ``extra`` JSON text of the carried columns (null if none).

pyarrow is imported on use only (``pip install 'airflow-llm-batch[parquet]'``).
"""

from __future__ import annotations

import json
import logging
from typing import IO, Any

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.google.bq_schema import (
    BOOL,
    FLOAT64,
    INT64,
    JSON,
    RECORD,
    CoercionStats,
    Column,
    SchemaMappingError,
    coerce,
    columns_from_json_schema,
)

log = logging.getLogger(__name__)

DEFAULT_ROW_GROUP_SIZE = 10_000
_BASE_FIELDS = ("key", "status", "output", "parsed", "error", "usage", "model", "batch_id", "custom_id",
                "attempts", "cached", "answered_by")


def require_pyarrow() -> None:
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError as exc:
        raise InvalidInputError("Parquet output needs pyarrow: pip install 'airflow-llm-batch[parquet]'; "
                                "nothing was submitted.") from exc


def parsed_column(response_schema: dict[str, Any] | None) -> Column | None:
    """The typed ``parsed`` struct for a response schema, or None (then parsed lands as JSON text)."""
    if not response_schema:
        return None
    try:
        return Column("parsed", RECORD, fields=tuple(columns_from_json_schema(response_schema)))
    except SchemaMappingError as exc:
        log.info("parsed lands as JSON text in Parquet: %s", exc)
        return None


def arrow_type(column: Column) -> Any:
    import pyarrow as pa

    if column.type == RECORD:
        inner = pa.struct([pa.field(f.name, arrow_type(f)) for f in column.fields])
    else:
        inner = {INT64: pa.int64(), FLOAT64: pa.float64(), BOOL: pa.bool_()}.get(column.type, pa.string())
    return pa.list_(inner) if column.repeated else inner


def arrow_schema(parsed: Column | None) -> Any:
    import pyarrow as pa

    usage = pa.struct([(n, pa.int64()) for n in ("input_tokens", "output_tokens", "cached_input_tokens",
                                                 "total_tokens")])
    return pa.schema([
        ("key", pa.string()), ("status", pa.string()), ("output", pa.string()),
        ("parsed", arrow_type(parsed) if parsed is not None else pa.string()),
        ("error", pa.struct([("code", pa.string()), ("message", pa.string())])),
        ("usage", usage), ("model", pa.string()), ("batch_id", pa.string()), ("custom_id", pa.string()),
        ("attempts", pa.int64()), ("cached", pa.bool_()), ("answered_by", pa.string()), ("extra", pa.string()),
    ])


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _arrow_value(value: Any, column: Column) -> Any:
    """A coerced value with JSON-typed parts turned into JSON text, as Arrow expects."""
    if value is None:
        return None
    if column.repeated:
        single = Column(column.name, column.type, "NULLABLE", column.fields)
        return [_arrow_value(v, single) for v in value]
    if column.type == JSON:
        return _json_text(value)
    if column.type == RECORD:
        return {f.name: _arrow_value(value.get(f.name), f) for f in column.fields}
    return value


class ParquetResultWriter:
    """Streams result rows (their ``ResultRow.to_dict()`` records) into a Parquet file object, one row
    group per ``row_group_size`` rows.

    Example::

        with path.open("wb") as fh:
            writer = ParquetResultWriter(fh, Triage.model_json_schema())
            for row in rows:
                writer.write(row.to_dict())
            writer.close()
    """

    def __init__(self, fh: IO[bytes], response_schema: dict[str, Any] | None,
                 row_group_size: int = DEFAULT_ROW_GROUP_SIZE) -> None:
        require_pyarrow()
        import pyarrow.parquet as pq

        if row_group_size < 1:
            raise InvalidInputError(f"row_group_size must be at least 1, not {row_group_size}")
        self.parsed = parsed_column(response_schema)
        self.schema = arrow_schema(self.parsed)
        self.row_group_size = row_group_size
        self.stats = CoercionStats()
        self.rows = 0
        self._buffer: list[dict[str, Any]] = []
        self._writer = pq.ParquetWriter(fh, self.schema)

    def write(self, record: dict[str, Any]) -> None:
        """Add one row, given as its ``ResultRow.to_dict()`` record."""
        self._buffer.append(self._record(record))
        self.rows += 1
        if len(self._buffer) >= self.row_group_size:
            self._flush()

    def close(self) -> None:
        self._flush()
        self._writer.close()
        if self.stats.nulled:
            log.warning("Parquet: %d value(s) did not fit their column and were written as null: %s",
                        sum(self.stats.nulled.values()), self.stats.nulled)

    def abort(self) -> None:
        """Give up without writing the footer (the caller discards the file)."""
        self._buffer = []
        self._writer.is_open = False  # pyarrow's own flag: its __del__ would otherwise close the file

    def _flush(self) -> None:
        import pyarrow as pa

        if self._buffer:
            self._writer.write_table(pa.Table.from_pylist(self._buffer, schema=self.schema))
            self._buffer = []

    def _record(self, data: dict[str, Any]) -> dict[str, Any]:
        extra = {k: v for k, v in data.items() if k not in _BASE_FIELDS}
        if self.parsed is not None:
            parsed = _arrow_value(coerce(data["parsed"], self.parsed, self.stats), self.parsed)
        else:
            parsed = _json_text(data["parsed"])
        base = {k: data.get(k) for k in _BASE_FIELDS}
        return {**base, "parsed": parsed, "extra": _json_text(extra or None)}
