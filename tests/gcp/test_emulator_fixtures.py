"""The emulator fixtures start real servers on loopback that the Google clients talk to."""

from __future__ import annotations

from typing import Any

from airflow_llm_batch.google.emulators import LocalBigQuery, LocalGcs
from tests.gcp.fixtures import unique_name


def test_gcs_emulator_keeps_objects_as_files(gcs_emulator: LocalGcs) -> None:
    assert gcs_emulator.endpoint.startswith("http://127.0.0.1:")
    bucket = gcs_emulator.client().create_bucket(unique_name("b").replace("_", "-"))
    bucket.blob("dir/a.txt").upload_from_string(b"hello")
    assert (gcs_emulator.objects_root / bucket.name / "dir" / "a.txt").read_bytes() == b"hello"


def test_bigquery_emulator_runs_load_jobs_from_the_gcs_emulator(gcs_emulator: LocalGcs,
                                                                bq_emulator: LocalBigQuery) -> None:
    from google.cloud import bigquery

    assert bq_emulator.endpoint.startswith("http://127.0.0.1:")
    bucket = gcs_emulator.client().create_bucket(unique_name("stage").replace("_", "-"))
    bucket.blob("rows.ndjson").upload_from_string(b'{"id": 1, "name": "a"}\n{"id": 2, "name": "b"}\n')
    client: Any = bq_emulator.client()
    dataset = client.create_dataset(unique_name("ds"))
    table_id = f"{bq_emulator.project}.{dataset.dataset_id}.t"
    config = bigquery.LoadJobConfig(source_format="NEWLINE_DELIMITED_JSON", schema=[
        bigquery.SchemaField("id", "INT64"), bigquery.SchemaField("name", "STRING")])
    client.load_table_from_uri(f"gs://{bucket.name}/rows.ndjson", table_id, job_config=config).result()
    assert sorted(dict(r.items())["id"] for r in client.list_rows(table_id)) == [1, 2]
