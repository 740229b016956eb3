"""LLMBatchOperator with provider="vertex" in real Airflow (dag.test(), trigger run inline) against the
bundled emulator, whose batch prediction jobs really read and write the GCS and BigQuery emulators:
rows from BigQuery with answers landed in GCS, rows staged in GCS with answers landed in BigQuery,
row failures, expiry and a crashed worker; every row joined to its own input by key."""

from __future__ import annotations

import io
import json
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_llm_batch.emulator import Emulator, EmulatorConfig
from airflow_llm_batch.emulator.vertex_api import set_vertex_storage
from airflow_llm_batch.google.emulators import LocalBigQuery, LocalGcs
from airflow_llm_batch.pipeline import answers_ahead
from tests.airflow_helpers import run_dag, task_states, xcom
from tests.gcp import fixtures as gcp_fixtures
from tests.gcp.fixtures import unique_name

# the session's GCS and BigQuery emulators and the google_cloud_default connection to them (fixtures)
bq_emulator, gcs_emulator, gcp_connection = gcp_fixtures.bq_emulator, gcp_fixtures.gcs_emulator, \
    gcp_fixtures.gcp_connection

pytestmark = pytest.mark.usefixtures("airflow_db", "gcp_connection")

FAST = EmulatorConfig(validating_seconds=0.05, requests_per_second=20_000.0, finalizing_seconds=0.05,
                      cancelling_seconds=0.05)
CATEGORIES = ["lamps", "chairs", "rugs", "mugs"]


@pytest.fixture(scope="module")
def vertex_emulators(gcs_emulator: LocalGcs, bq_emulator: LocalBigQuery) -> Iterator[dict[str, Emulator]]:
    """A fast emulator, and one whose jobs expire after answering 160 rows (0.40125 s at 400 rows/s)."""
    fast = Emulator(FAST)
    expiring = Emulator(FAST.replace(requests_per_second=400.0, expire_after_seconds=0.45125))
    for emu in (fast, expiring):
        emu.start()
        set_vertex_storage(emu.url, gcs_endpoint=gcs_emulator.endpoint, bigquery_endpoint=bq_emulator.endpoint)
    try:
        yield {"fast": fast, "expiring": expiring}
    finally:
        fast.stop()
        expiring.stop()


@pytest.fixture
def bucket(gcs_emulator: LocalGcs) -> str:
    return str(gcs_emulator.client().create_bucket(unique_name("vxo").replace("_", "-")).name)


@pytest.fixture
def dataset(bq_emulator: LocalBigQuery) -> str:
    return f"{bq_emulator.project}.{bq_emulator.client().create_dataset(unique_name('vxo')).dataset_id}"


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch, gcs_emulator: LocalGcs, bq_emulator: LocalBigQuery) -> Any:
    """Define a Vertex connection (google_cloud_platform) pointing at an emulator; returns its id."""

    def _connect(emu: Emulator, staging: str, output: str | None = None) -> str:
        conn_id = f"vertex_{uuid.uuid4().hex[:8]}"
        extra = {"project": bq_emulator.project, "vertex_location": "europe-west4", "vertex_endpoint": emu.url,
                 "storage_endpoint": gcs_emulator.endpoint, "bigquery_endpoint": bq_emulator.endpoint,
                 "vertex_staging_uri": staging, **({"vertex_output_uri": output} if output else {})}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}",
                           json.dumps({"conn_type": "google_cloud_platform", "extra": extra}))
        return conn_id

    return _connect


def products(count: int, prefix: str) -> list[dict[str, Any]]:
    rng = random.Random(count)
    return [{"product_id": f"{prefix}-{i:05d}", "name": f"Item {i} {{{{ not a template }}}}",
             "category": rng.choice(CATEGORIES), "price": round(5 + i * 0.25, 2)} for i in range(count)]


def seed_table(bq: LocalBigQuery, table: str, rows: list[dict[str, Any]]) -> None:
    from google.cloud import bigquery

    schema = [bigquery.SchemaField("product_id", "STRING"), bigquery.SchemaField("name", "STRING"),
              bigquery.SchemaField("category", "STRING"), bigquery.SchemaField("price", "FLOAT64")]
    body = "".join(json.dumps(r) + "\n" for r in rows).encode()
    config = bigquery.LoadJobConfig(source_format="NEWLINE_DELIMITED_JSON", schema=schema)
    bq.client().load_table_from_file(io.BytesIO(body), table, job_config=config).result()


def write_rows(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return f"file://{path}"


def prompt_of(row: dict[str, Any]) -> str:
    return f"Item {row['product_id']}: {row['name']} ({row['category']}), {row['price']} EUR"


def vertex_stats(emu: Emulator) -> dict[str, Any]:
    return emu.stats()["vertex"]  # type: ignore[no-any-return]


def sent(before: dict[str, Any], after: dict[str, Any], prefix: str, field: str = "requests_by_custom_id"
         ) -> dict[str, int]:
    was = before[field]
    return {k: v - was.get(k, 0) for k, v in after[field].items() if k.startswith(prefix)}


def check_joined(results: list[dict[str, Any]], rows: list[dict[str, Any]]) -> None:
    """Each result row carries its own row's answer (the emulator echoes the prompt into free text)."""
    by_key = {row["product_id"]: row for row in rows}
    assert sorted(r["key"] for r in results) == sorted(by_key)
    for result in results:
        if result["status"] == "succeeded":
            assert result["parsed"]["headline"] == prompt_of(by_key[result["key"]])
            assert 1 <= result["parsed"]["reading_minutes"] <= 5


def test_bigquery_rows_staged_in_bigquery_answers_landed_in_gcs(
        tmp_path: Path, vertex_emulators: dict[str, Emulator], connect: Any, bq_emulator: LocalBigQuery,
        gcs_emulator: LocalGcs, dataset: str, bucket: str) -> None:
    emu = vertex_emulators["fast"]
    prefix = f"p{uuid.uuid4().hex[:6]}"
    rows = products(2500, prefix)
    seed_table(bq_emulator, f"{dataset}.products", rows)
    conn_id = connect(emu, staging=f"bq://{dataset}", output=f"gs://{bucket}/vertex-output")
    before = vertex_stats(emu)
    dag_run = run_dag("llmb_vertex", {"rows": f"bq://{dataset}.products", "conn_id": conn_id,
                                      "destination": f"gs://{bucket}/catalog/descriptions.jsonl",
                                      "workspace": f"file://{tmp_path}/ws"})
    after = vertex_stats(emu)
    assert task_states(dag_run) == {"describe": "success"}
    summary = xcom(dag_run, "describe")
    assert (summary["total"], summary["succeeded"], summary["failed"]) == (2500, 2500, 0)
    assert len(summary["batch_ids"]) == 3 and after["batches_created"] - before["batches_created"] == 3
    assert set(sent(before, after, prefix).values()) == {1} and len(sent(before, after, prefix)) == 2500
    assert summary["provider"] == "vertex" and summary["usage"]["input_tokens"] > 0
    # the jobs read BigQuery staging tables and wrote Cloud Storage
    staged = [t.table_id for t in bq_emulator.client().list_tables(dataset) if t.table_id.startswith("llmb_in_")]
    assert len(staged) == 3
    outputs = [b.name for b in gcs_emulator.client().list_blobs(bucket, prefix="vertex-output/")]
    assert len(outputs) == 3 and all(name.endswith("/predictions.jsonl") for name in outputs)
    landed = gcs_emulator.client().bucket(bucket).blob("catalog/descriptions.jsonl").download_as_text()
    results = [json.loads(line) for line in landed.splitlines()]
    check_joined(results, rows)
    assert all(r["batch_id"] in summary["batch_ids"] and r["model"] == "gemini-2.5-flash" for r in results)


def test_gcs_staging_bigquery_output_failed_rows_keep_their_reasons(
        tmp_path: Path, vertex_emulators: dict[str, Emulator], connect: Any, bq_emulator: LocalBigQuery,
        gcs_emulator: LocalGcs, dataset: str, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # one output table read at a time: bqemulator runs concurrent reads on ONE DuckDB connection, so two
    # tabledata.list calls at once can swap their results (real BigQuery pages each read on its own)
    monkeypatch.setattr(answers_ahead, "COLLECT_AHEAD", 0)
    emu = vertex_emulators["fast"]
    prefix = f"q{uuid.uuid4().hex[:6]}"
    rows = products(1200, prefix)
    permanent = {rows[i]["product_id"] for i in range(0, 1200, 100)}
    transient = {rows[i]["product_id"] for i in range(50, 1200, 200)}
    for row in rows:
        if row["product_id"] in permanent:
            row["name"] += " [[emulator:error:invalid_request_error]]"
        elif row["product_id"] in transient:
            row["name"] += " [[emulator:error:server_error]]"
    conn_id = connect(emu, staging=f"gs://{bucket}/staging", output=f"bq://{dataset}")
    # the rows themselves live in GCS too (read through google-cloud-storage, streamed)
    gcs_emulator.client().bucket(bucket).blob("input/rows.jsonl").upload_from_string(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    before = vertex_stats(emu)
    dag_run = run_dag("llmb_vertex", {"rows": f"gs://{bucket}/input/rows.jsonl?conn_id={conn_id}",
                                      "conn_id": conn_id, "destination": f"bq://{dataset}.descriptions",
                                      "workspace": f"file://{tmp_path}/ws"})
    after = vertex_stats(emu)
    assert task_states(dag_run) == {"describe": "success"}
    summary = xcom(dag_run, "describe")
    assert (summary["total"], summary["failed"]) == (1200, len(permanent) + len(transient))
    assert summary["errors_by_code"] == {"invalid_request_error": len(permanent), "server_error": len(transient)}
    assert summary["resubmitted_rows"] == 2 * len(transient)  # attempts 2 and 3 of the transient rows
    paid = sent(before, after, prefix)
    assert all(paid[key] == (3 if key in transient else 1) for key in paid) and len(paid) == 1200
    # the jobs wrote BigQuery tables; the results landed in BigQuery
    outputs = [t.table_id for t in bq_emulator.client().list_tables(dataset) if t.table_id.startswith("llmb_out_")]
    assert len(outputs) == 6  # 2 chunks; then, per chunk, one retry chunk for attempt 2 and one for 3
    landed = bq_emulator.client().query(f"SELECT key, status, error_code, error_message, headline, reading_minutes "
                                        f"FROM `{dataset}.descriptions`").result()
    results = [{"key": r["key"], "status": r["status"], "error": {"code": r["error_code"],
                                                                  "message": r["error_message"]},
                "parsed": {"headline": r["headline"], "reading_minutes": r["reading_minutes"]}} for r in landed]
    check_joined(results, rows)
    for result in results:
        if result["key"] in permanent:
            assert result["status"] == "failed" and result["error"]["code"] == "invalid_request_error"
            assert result["error"]["message"].startswith("INVALID_ARGUMENT (400)")
        elif result["key"] in transient:
            assert result["status"] == "failed" and result["error"]["code"] == "server_error"
        else:
            assert result["status"] == "succeeded"


def test_expired_jobs_resubmit_unanswered_rows_and_pay_each_answer_once(
        tmp_path: Path, vertex_emulators: dict[str, Emulator], connect: Any, bucket: str) -> None:
    emu = vertex_emulators["expiring"]
    prefix = f"e{uuid.uuid4().hex[:6]}"
    rows = products(300, prefix)
    conn_id = connect(emu, staging=f"gs://{bucket}/staging")
    before = vertex_stats(emu)
    dag_run = run_dag("llmb_vertex", {"rows": write_rows(tmp_path / "rows.jsonl", rows), "conn_id": conn_id,
                                      "destination": f"file://{tmp_path}/out.jsonl",
                                      "workspace": f"file://{tmp_path}/ws"})
    after = vertex_stats(emu)
    assert task_states(dag_run) == {"describe": "success"}
    summary = xcom(dag_run, "describe")
    # job 1 expires after answering 160 rows; the other 140 go again in job 2, which finishes in time
    assert (summary["succeeded"], summary["failed"], summary["resubmitted_rows"]) == (300, 0, 140)
    assert len(summary["batch_ids"]) == 2
    assert set(sent(before, after, prefix, "succeeded_by_custom_id").values()) == {1}
    assert sorted(sent(before, after, prefix).values()).count(2) == 140
    results = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    check_joined(results, rows)
    assert sum(r["attempts"] == 2 for r in results) == 140


def test_single_attempt_expired_rows_end_failed_with_the_reason(
        tmp_path: Path, vertex_emulators: dict[str, Emulator], connect: Any, bucket: str) -> None:
    emu = vertex_emulators["expiring"]
    rows = products(300, f"x{uuid.uuid4().hex[:6]}")
    conn_id = connect(emu, staging=f"gs://{bucket}/staging")
    dag_run = run_dag("llmb_vertex_single_attempt", {
        "rows": write_rows(tmp_path / "rows.jsonl", rows), "conn_id": conn_id,
        "destination": f"file://{tmp_path}/out.jsonl", "workspace": f"file://{tmp_path}/ws"})
    assert task_states(dag_run) == {"describe": "success"}
    summary = xcom(dag_run, "describe")
    assert (summary["succeeded"], summary["failed"], summary["errors_by_code"]) == (160, 140, {"batch_expired": 140})
    results = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    check_joined(results, rows)
    expired = [r for r in results if r["status"] == "failed"]
    assert len(expired) == 140 and all(r["error"]["code"] == "batch_expired" and r["error"]["message"]
                                       for r in expired)


def test_a_worker_crash_after_the_jobs_ran_pays_nothing_again(
        tmp_path: Path, vertex_emulators: dict[str, Emulator], connect: Any, bucket: str) -> None:
    emu = vertex_emulators["fast"]
    prefix = f"c{uuid.uuid4().hex[:6]}"
    rows = products(1500, prefix)
    conn_id = connect(emu, staging=f"gs://{bucket}/staging")
    before = vertex_stats(emu)
    dag_run = run_dag("llmb_vertex_retry", {"rows": write_rows(tmp_path / "rows.jsonl", rows), "conn_id": conn_id,
                                            "destination": f"file://{tmp_path}/out.jsonl",
                                            "workspace": f"file://{tmp_path}/ws"})
    after = vertex_stats(emu)
    assert task_states(dag_run) == {"describe": "success"}
    assert dag_run.get_task_instances()[0].try_number == 2
    assert after["batches_created"] - before["batches_created"] == 2
    assert set(sent(before, after, prefix).values()) == {1}
    check_joined([json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()], rows)


def test_a_connection_without_staging_fails_before_anything_is_paid(
        tmp_path: Path, vertex_emulators: dict[str, Emulator], monkeypatch: pytest.MonkeyPatch) -> None:
    emu = vertex_emulators["fast"]
    monkeypatch.setenv("AIRFLOW_CONN_VERTEX_NO_STAGING", json.dumps({"conn_type": "google_cloud_platform", "extra": {
        "project": "test-project", "vertex_endpoint": emu.url}}))
    before = vertex_stats(emu)["batches_created"]
    dag_run = run_dag("llmb_vertex", {"rows": write_rows(tmp_path / "rows.jsonl", products(3, "n")),
                                      "conn_id": "vertex_no_staging", "destination": f"file://{tmp_path}/o.jsonl",
                                      "workspace": f"file://{tmp_path}/ws"})
    assert task_states(dag_run) == {"describe": "failed"}
    assert vertex_stats(emu)["batches_created"] == before and not (tmp_path / "o.jsonl").exists()
