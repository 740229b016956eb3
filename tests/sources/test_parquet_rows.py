"""Parquet row files, read in record batches from local disk and from GCS (gcp-storage-emulator)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.google.emulators import LocalGcs
from airflow_llm_batch.google.gcs import GcsObject
from airflow_llm_batch.sources.rows import read_rows_file, rows_factory, to_path
from tests.gcp.fixtures import unique_name


def write_parquet(path: Path, count: int) -> list[dict[str, object]]:
    rows = [{"id": f"r{i:05d}", "text": f"payload {i}", "n": i, "tags": ["a", str(i % 3)]} for i in range(count)]
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=4000)
    return rows


def test_local_parquet_rows_stream_in_batches(tmp_path: Path) -> None:
    rows = write_parquet(tmp_path / "rows.parquet", 25_000)
    factory = rows_factory(f"file://{tmp_path}/rows.parquet")
    assert list(factory()) == rows
    stream = read_rows_file(to_path(tmp_path / "rows.parquet"))
    assert next(stream) == rows[0]


def test_a_file_that_is_not_parquet_is_invalid_input(tmp_path: Path) -> None:
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(InvalidInputError, match="not readable as Parquet"):
        list(rows_factory(str(tmp_path / "bad.parquet"))())


def test_parquet_rows_from_gcs(tmp_path: Path, gcs_emulator: LocalGcs, gcs_connection: str) -> None:
    rows = write_parquet(tmp_path / "rows.parquet", 12_000)
    bucket = gcs_emulator.client().create_bucket(unique_name("rows").replace("_", "-"))
    bucket.blob("in/rows.parquet").upload_from_filename(str(tmp_path / "rows.parquet"))
    obj = GcsObject.parse(f"gs://{bucket.name}/in/rows.parquet")
    assert obj.exists()
    assert list(read_rows_file(obj)) == rows  # type: ignore[arg-type]
