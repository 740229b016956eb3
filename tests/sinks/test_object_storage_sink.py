"""ObjectStorageSink: JSONL and Parquet, inline or separate failures, atomic, on disk and on GCS."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.google.emulators import LocalGcs
from airflow_llm_batch.pipeline.types import ResultRow
from airflow_llm_batch.sinks import open_sink
from airflow_llm_batch.sinks.object_storage import ObjectStorageSink
from tests.gcp.fixtures import unique_name
from tests.sinks.helpers import context, result_rows


def jsonl(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode().splitlines()]


def parquet_as_jsonl_records(data: bytes) -> list[dict[str, Any]]:
    """Parquet rows in the JSONL shape: JSON-text parts decoded, ``extra`` spread out."""
    out = []
    for record in pq.read_table(io.BytesIO(data)).to_pylist():
        if record["parsed"] is not None:
            record["parsed"]["meta"] = json.loads(record["parsed"]["meta"])
        record.update(json.loads(record.pop("extra") or "{}"))
        out.append(record)
    return out


def expected(rows: Iterator[ResultRow]) -> list[dict[str, Any]]:
    return [{"cached": None, **r.to_dict()} for r in rows]


def test_jsonl_keeps_failures_inline_by_default(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "results.jsonl"
    landed = open_sink(f"file://{dest}").write(result_rows(25), context())
    assert landed == {"uri": f"file://{dest}", "format": "jsonl", "rows": 25, "succeeded": 22, "failed": 3}
    records = jsonl(dest.read_bytes())
    assert [r["key"] for r in records] == [f"k{i:05d}" for i in range(25)]
    assert records[3]["status"] == "failed" and records[3]["error"]["code"] == "invalid_output"
    assert records[4]["parsed"]["detail"] == {"note": "n4", "n": 4} and records[4]["ticket"] == "T4"


@pytest.mark.parametrize("name", ["results.jsonl", "results.parquet"])
def test_separate_failures_file_next_to_the_results(tmp_path: Path, name: str) -> None:
    dest = tmp_path / name
    landed = open_sink(f"file://{dest}?failures=separate").write(result_rows(25), context())
    failures = tmp_path / "results.failures.jsonl"
    assert landed["failures_uri"] == f"file://{failures}" and landed["failed"] == 3
    assert [r["key"] for r in jsonl(failures.read_bytes())] == ["k00003", "k00013", "k00023"]
    main = jsonl(dest.read_bytes()) if name.endswith("jsonl") else parquet_as_jsonl_records(dest.read_bytes())
    assert len(main) == 22 and {r["status"] for r in main} == {"succeeded"}
    # a re-landing without failures leaves an empty failures file, never a stale one
    open_sink(f"file://{dest}?failures=separate").write(result_rows(25, fail_every=0), context())
    assert failures.read_bytes() == b""


def test_parquet_is_typed_streamed_in_row_groups_and_equal_to_jsonl(tmp_path: Path) -> None:
    dest = tmp_path / "results.pq"
    sink = ObjectStorageSink(f"file://{dest}", row_group_size=10)
    assert sink.write(result_rows(25), context())["format"] == "parquet"
    meta = pq.ParquetFile(dest)
    assert meta.metadata.num_row_groups == 3 and meta.metadata.num_rows == 25
    parsed = meta.schema_arrow.field("parsed").type
    assert parsed.field("score").type == pa.int64() and parsed.field("ok").type == pa.bool_()
    assert parsed.field("tags").type == pa.list_(pa.string()) and parsed.field("meta").type == pa.string()
    assert parsed.field("detail").type == pa.struct([("note", pa.string()), ("n", pa.int64())])
    assert parquet_as_jsonl_records(dest.read_bytes()) == expected(result_rows(25))


def test_a_failed_landing_leaves_the_previous_file_whole(tmp_path: Path) -> None:
    dest = tmp_path / "results.jsonl"
    open_sink(f"file://{dest}").write(result_rows(5), context())
    before = dest.read_bytes()

    def broken() -> Iterator[ResultRow]:
        yield from result_rows(3, tag=" new")
        raise OSError("workspace vanished")

    with pytest.raises(OSError, match="vanished"):
        open_sink(f"file://{dest}").write(broken(), context())
    assert dest.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.jsonl"]


def test_check_refuses_bad_destinations_before_anything_is_submitted(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="nosuch"):
        open_sink("nosuch://bucket/results.jsonl").check(context())
    with pytest.raises(InvalidInputError, match="unknown options"):
        open_sink(f"file://{tmp_path}/r.jsonl?colour=blue").check(context())
    with pytest.raises(InvalidInputError, match="format='csv'"):
        open_sink(f"file://{tmp_path}/r.jsonl", format="csv").check(context())
    with pytest.raises(InvalidInputError, match="failures='elsewhere'"):
        open_sink(f"file://{tmp_path}/r.jsonl?failures=elsewhere").check(context())
    with pytest.raises(InvalidInputError, match="both in the URI and as arguments"):
        open_sink(f"file://{tmp_path}/r.jsonl?format=jsonl", format="parquet").check(context())
    open_sink(f"file://{tmp_path}/r.parquet").check(context())


# -- on GCS (gcp-storage-emulator) -----------------------------------------------------------------------
@pytest.fixture
def bucket(gcs_emulator: LocalGcs, gcs_connection: str) -> Any:
    return gcs_emulator.client().create_bucket(unique_name("results").replace("_", "-"))


def test_jsonl_and_parquet_landed_in_gcs_read_back_equal(bucket: Any) -> None:
    for name in ("triage/out.jsonl", "triage/out.parquet"):
        sink = open_sink(f"gs://{bucket.name}/{name}")
        sink.check(context())
        assert sink.write(result_rows(2500), context())["rows"] == 2500
    from_jsonl = jsonl(bucket.blob("triage/out.jsonl").download_as_bytes())
    from_parquet = parquet_as_jsonl_records(bucket.blob("triage/out.parquet").download_as_bytes())
    assert from_parquet == expected(result_rows(2500))
    assert [{"cached": None, **r} for r in from_jsonl] == from_parquet
    assert sorted(b.name for b in bucket.list_blobs()) == ["triage/out.jsonl", "triage/out.parquet"]


def test_gcs_separate_failures_and_atomic_replace(bucket: Any) -> None:
    uri = f"gs://{bucket.name}/day/out.parquet?failures=separate&row_group_size=100"
    landed = open_sink(uri).write(result_rows(300), context())
    assert landed["failures_uri"] == f"gs://{bucket.name}/day/out.failures.jsonl" and landed["failed"] == 30
    before = bucket.blob("day/out.parquet").download_as_bytes()

    def broken() -> Iterator[ResultRow]:
        yield from result_rows(300, tag=" v2")
        raise RuntimeError("worker lost")

    with pytest.raises(RuntimeError, match="worker lost"):
        open_sink(uri).write(broken(), context())
    assert bucket.blob("day/out.parquet").download_as_bytes() == before
    assert len(jsonl(bucket.blob("day/out.failures.jsonl").download_as_bytes())) == 30


def test_gcs_check_names_a_missing_bucket(gcs_connection: str) -> None:
    with pytest.raises(InvalidInputError, match="bucket 'no-such-bucket-here' does not exist"):
        open_sink("gs://no-such-bucket-here/out.jsonl").check(context())
    with pytest.raises(InvalidInputError, match="expected gs://BUCKET/OBJECT"):
        open_sink("gs://only-a-bucket/").check(context())


def test_parquet_has_answered_by_as_its_own_column(tmp_path: Path) -> None:
    dest = tmp_path / "paths.parquet"
    rows = list(result_rows(6))
    for row, path in zip(rows, ["batch", "realtime", "cache", "realtime", "batch", "cache"], strict=True):
        row.answered_by = path
    open_sink(f"file://{dest}").write(iter(rows), context())
    table = pq.read_table(dest)
    assert table.schema.field("answered_by").type == pa.string()
    assert table.column("answered_by").to_pylist() == ["batch", "realtime", "cache", "realtime", "batch", "cache"]
    assert all("answered_by" not in json.loads(extra) for extra in table.column("extra").to_pylist())


@pytest.mark.parametrize("uri", ["results.jsonl", "results.parquet", "results.jsonl?failures=separate",
                                 "results.parquet?failures=separate"])
def test_records_land_byte_for_byte_as_the_rows_do(tmp_path: Path, uri: str) -> None:
    by_rows, by_records = tmp_path / "rows", tmp_path / "records"
    landed_rows = open_sink(f"file://{by_rows}/{uri}").write(result_rows(25), context())
    sink = ObjectStorageSink(f"file://{by_records}/{uri}")
    landed_records = sink.write_records((r.to_dict() for r in result_rows(25)), context())
    assert {k: v for k, v in landed_records.items() if not k.endswith("uri")} == \
        {k: v for k, v in landed_rows.items() if not k.endswith("uri")}
    assert landed_records["failed"] == 3 and landed_records["rows"] == 25
    names = sorted(p.name for p in by_rows.iterdir())
    assert names == sorted(p.name for p in by_records.iterdir()) and len(names) == (2 if "separate" in uri else 1)
    for name in names:
        if name.endswith(".parquet"):  # the same table (the files' metadata may differ)
            assert pq.read_table(by_records / name).equals(pq.read_table(by_rows / name))
        else:
            assert (by_records / name).read_bytes() == (by_rows / name).read_bytes()
