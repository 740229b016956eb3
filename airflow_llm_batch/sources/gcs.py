"""Row files on Google Cloud Storage (``gs://bucket/rows.jsonl|.csv|.parquet``), streamed through
google-cloud-storage, so reading them does not need gcsfs (which ObjectStoragePath would)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.google.gcs import GcsObject
from airflow_llm_batch.sources.rows import RowsFactory, read_rows_file


def gcs_rows(uri: str, conn_id: str | None = None, **options: Any) -> RowsFactory:
    """Check the object exists now (before anything is paid); read it as a stream at each call.

    The connection may ride in the URI: ``gs://bucket/rows.jsonl?conn_id=my_gcp``.

    Example: ``rows_factory("gs://acme-support/tickets/2026-11-21.jsonl")``
    """
    base, _, query = uri.partition("?")
    for name, value in parse_qsl(query, keep_blank_values=True):
        options.setdefault(name, value)
    conn_id = options.pop("conn_id", conn_id)
    if options:
        raise InvalidInputError(f"unknown options for a gs:// rows file: {sorted(options)}")
    obj = GcsObject.parse(base, conn_id)
    if not obj.exists():
        raise InvalidInputError(f"rows file {uri} does not exist; nothing was submitted.")
    return lambda: read_rows_file(obj)  # type: ignore[arg-type]  # GcsObject has the name/open it uses
