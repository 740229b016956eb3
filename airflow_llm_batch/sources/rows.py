"""Row sources for the operators: a list of dicts, or a JSONL / CSV file on any object storage."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from airflow.sdk import ObjectStoragePath

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.pipeline.storage import ensure_filesystem

RowsFactory = Callable[[], Iterable[Mapping[str, Any]]]

#: URI scheme -> "module:function"; the function takes (uri, **options), checks the source exists
#: (InvalidInputError otherwise) and returns a RowsFactory that reads the rows in pages.
SOURCE_SCHEMES: dict[str, str] = {
    "bq": "airflow_llm_batch.sources.bigquery:bigquery_rows",
    "gs": "airflow_llm_batch.sources.gcs:gcs_rows",
}


def to_path(uri: str | ObjectStoragePath) -> ObjectStoragePath:
    """A URI (``file://``, ``gs://``, ``s3://``...) or a plain local path -> ObjectStoragePath."""
    if isinstance(uri, ObjectStoragePath):
        return uri
    text = str(uri)
    ensure_filesystem(text)
    return ObjectStoragePath(text if "://" in text else f"file://{text}")


def rows_factory(rows: Any, **options: Any) -> RowsFactory:
    """Return a callable yielding the rows anew at each call (the engine may read them twice).

    Checks the source exists now, so a typo fails before anything is submitted.
    """
    if isinstance(rows, str) and "://" in rows and rows.split("://", 1)[0].lower() in SOURCE_SCHEMES:
        import importlib

        module, _, name = SOURCE_SCHEMES[rows.split("://", 1)[0].lower()].partition(":")
        factory: RowsFactory = getattr(importlib.import_module(module), name)(rows, **options)
        return factory
    if isinstance(rows, (str, ObjectStoragePath)):
        path = to_path(rows)
        if not path.exists():
            raise InvalidInputError(f"rows file {path} does not exist; nothing was submitted.")
        return lambda: read_rows_file(path)
    if isinstance(rows, Mapping):
        raise InvalidInputError("rows is a single mapping; pass a list of row dicts or a file URI")
    if isinstance(rows, Iterable):
        materialised = rows if isinstance(rows, (list, tuple)) else list(rows)
        return lambda: materialised
    raise InvalidInputError(f"rows must be a list of dicts or a file URI, not {type(rows).__name__}")


def read_rows_file(path: ObjectStoragePath) -> Iterator[Mapping[str, Any]]:
    """Stream rows from JSONL (``.jsonl``/``.ndjson``/``.json``), CSV (``.csv``) or Parquet
    (``.parquet``/``.pq``, read in record batches; needs pyarrow)."""
    suffix = path.name.lower().rsplit(".", 1)[-1]
    with path.open("rb") as fh:  # type: ignore[no-untyped-call]
        if suffix in ("parquet", "pq"):
            try:
                import pyarrow.parquet as pq
            except ImportError as exc:
                raise InvalidInputError(f"rows file {path}: reading Parquet needs pyarrow "
                                        f"(pip install 'airflow-llm-batch[parquet]'); nothing was submitted.") from exc
            try:
                batches = pq.ParquetFile(fh).iter_batches(batch_size=10_000)  # the reader's memory bound
                for batch in batches:
                    yield from batch.to_pylist()
            except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
                raise InvalidInputError(f"rows file {path}: not readable as Parquet ({exc}); "
                                        f"nothing was submitted.") from exc
            return
        if suffix == "csv":
            yield from csv.DictReader(io.TextIOWrapper(fh, encoding="utf-8", newline=""))
            return
        if suffix not in ("jsonl", "ndjson", "json"):
            raise InvalidInputError(f"rows file {path}: unknown format {suffix!r}; use .jsonl, .csv or .parquet")
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(
                    f"rows file {path}, line {line_no}: not JSON ({exc.msg}); nothing was submitted."
                ) from exc
