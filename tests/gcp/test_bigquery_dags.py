"""End to end in real Airflow (dag.test()): rows from BigQuery, answers from the bundled OpenAI emulator,
results landed in BigQuery or GCS (both emulated), with retries that never pay twice."""

from __future__ import annotations

import io
import json
import random
import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow.parquet as pq
import pytest

from airflow_llm_batch.google.emulators import LocalBigQuery, LocalGcs, free_port
from tests.airflow_helpers import run_dag, task_states, xcom
from tests.gcp.fixtures import unique_name

pytestmark = pytest.mark.usefixtures("emulator", "airflow_db", "gcp_connection")

SUBJECTS = ["Charged twice", "App crashes on login", "Password reset fails", "Add dark mode", "Parcel late"]


@pytest.fixture
def dataset(bq_emulator: LocalBigQuery) -> str:
    return f"{bq_emulator.project}.{bq_emulator.client().create_dataset(unique_name('e2e')).dataset_id}"


def seed_tickets(bq: LocalBigQuery, table: str, count: int, prefix: str) -> None:
    """``count`` tickets loaded with a load job (what production does too)."""
    from google.cloud import bigquery

    rng = random.Random(count)
    lines = (json.dumps({"ticket_id": f"{prefix}-{i:05d}", "subject": rng.choice(SUBJECTS),
                         "tier": rng.choice(["free", "plus"]), "body": f"ticket {i}: it broke {i % 7} times"})
             for i in range(count))
    schema = [bigquery.SchemaField(n, "STRING") for n in ("ticket_id", "subject", "tier", "body")]
    config = bigquery.LoadJobConfig(source_format="NEWLINE_DELIMITED_JSON", schema=schema)
    bq.client().load_table_from_file(io.BytesIO("\n".join(lines).encode()), table, job_config=config).result()


def stats(emulator: Any) -> dict[str, Any]:
    return emulator.stats()["openai"]  # type: ignore[no-any-return]


def paid(before: dict[str, Any], after: dict[str, Any], prefix: str) -> dict[str, int]:
    was = before["requests_by_custom_id"]
    return {k: v - was.get(k, 0) for k, v in after["requests_by_custom_id"].items() if k.startswith(prefix)}


def query(bq: LocalBigQuery, sql: str) -> list[dict[str, Any]]:
    return [dict(r.items()) for r in bq.client().query(sql).result()]


@pytest.fixture
def ws(tmp_path: Any) -> Iterator[str]:
    yield f"file://{tmp_path}/ws"


def test_10000_rows_bigquery_to_bigquery_and_a_relanding_never_duplicates(
        emulator: Any, bq_emulator: LocalBigQuery, dataset: str, ws: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:6]}"
    seed_tickets(bq_emulator, f"{dataset}.tickets", 10_000, prefix)
    target = f"{dataset}.triage"
    before = stats(emulator)
    dag_run = run_dag("llmb_gcp_flaky", {"rows": f"bq://{dataset}.tickets?page_size=2000",
                                         "destination": f"bq://{target}?mode=merge", "workspace": ws,
                                         "fail_after_landing": True})
    after = stats(emulator)
    assert task_states(dag_run) == {"triage": "success"}
    (ti,) = dag_run.get_task_instances()
    assert ti.try_number == 2  # try 1 landed then crashed; try 2 landed again
    assert after["batches_created"] - before["batches_created"] == 4  # 10,000 rows / 2,500, once
    assert set(paid(before, after, prefix).values()) == {1} and len(paid(before, after, prefix)) == 10_000
    summary = xcom(dag_run, "triage")
    assert summary["succeeded"] == 10_000 and summary["landed"]["table"] == target
    (row,) = query(bq_emulator, f"SELECT COUNT(*) AS n, COUNT(DISTINCT key) AS k, COUNTIF(status = 'succeeded') "
                                f"AS ok, COUNT(DISTINCT run_id) AS runs FROM `{target}`")
    assert row == {"n": 10_000, "k": 10_000, "ok": 10_000, "runs": 1}
    schema = {f.name: (f.field_type, f.mode) for f in bq_emulator.client().get_table(target).schema}
    assert schema["category"] == ("STRING", "NULLABLE") and schema["priority"] == ("INT64", "NULLABLE")
    assert schema["urgent"] == ("BOOL", "NULLABLE") and schema["confidence"] == ("FLOAT64", "NULLABLE")
    assert schema["tags"] == ("STRING", "REPEATED") and schema["routing"] == ("RECORD", "NULLABLE")
    (one,) = query(bq_emulator, f"SELECT * FROM `{target}` WHERE key = '{prefix}-00042'")
    assert one["category"] in {"billing", "bug", "account", "other"} and 1 <= one["priority"] <= 5
    assert 0 <= one["confidence"] <= 1 and set(one["routing"]) == {"team", "escalate"}
    assert one["summary"].startswith(f"Ticket {prefix}-00042") and one["run_id"] == dag_run.run_id


def test_bigquery_unavailable_at_landing_fails_the_try_and_the_retry_lands_without_paying(
        emulator: Any, bq_emulator: LocalBigQuery, dataset: str, ws: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_GCP_DEAD", json.dumps({"conn_type": "google_cloud_platform", "extra": {
        "project": bq_emulator.project, "bigquery_endpoint": f"http://127.0.0.1:{free_port()}"}}))
    prefix = f"u{uuid.uuid4().hex[:6]}"
    seed_tickets(bq_emulator, f"{dataset}.tickets", 1200, prefix)
    target = f"{dataset}.triage"
    before = stats(emulator)
    dag_run = run_dag("llmb_gcp_flaky", {
        "rows": f"bq://{dataset}.tickets", "destination": f"bq://{target}", "workspace": ws,
        "dead_destination": f"bq://{target}?conn_id=gcp_dead&retry_deadline=1"})
    after = stats(emulator)
    assert task_states(dag_run) == {"triage": "success"}
    assert dag_run.get_task_instances()[0].try_number == 2
    assert after["batches_created"] - before["batches_created"] == 1
    assert after["files_uploaded"] - before["files_uploaded"] == 1
    assert set(paid(before, after, prefix).values()) == {1}
    assert query(bq_emulator, f"SELECT COUNT(*) AS n FROM `{target}`") == [{"n": 1200}]


def test_jsonl_and_parquet_landed_in_gcs_read_back_equal(emulator: Any, gcs_emulator: LocalGcs,
                                                         bq_emulator: LocalBigQuery, dataset: str,
                                                         tmp_path: Any) -> None:
    prefix = f"g{uuid.uuid4().hex[:6]}"
    seed_tickets(bq_emulator, f"{dataset}.tickets", 3000, prefix)
    bucket = gcs_emulator.client().create_bucket(unique_name("out").replace("_", "-"))
    landed = {}
    for name in ("triage.jsonl", "triage.parquet?failures=separate"):
        dag_run = run_dag("llmb_gcp", {"rows": f"bq://{dataset}.tickets", "workspace": f"file://{tmp_path}/{name}",
                                       "destination": f"gs://{bucket.name}/day/{name}"})
        assert task_states(dag_run) == {"triage": "success"}
        landed[name.split("?")[0]] = xcom(dag_run, "triage")["landed"]
    assert landed["triage.parquet"]["failures_uri"] == f"gs://{bucket.name}/day/triage.failures.jsonl"
    from_jsonl = [json.loads(line) for line in bucket.blob("day/triage.jsonl").download_as_text().splitlines()]
    from_parquet = pq.read_table(io.BytesIO(bucket.blob("day/triage.parquet").download_as_bytes())).to_pylist()
    assert len(from_jsonl) == len(from_parquet) == 3000
    fields = ("key", "status", "output", "parsed", "error", "usage", "model", "attempts")
    assert [{f: r[f] for f in fields} for r in from_parquet] == [{f: r[f] for f in fields} for r in from_jsonl]
    assert bucket.blob("day/triage.failures.jsonl").download_as_bytes() == b""


@pytest.mark.parametrize("case", ["unknown_scheme", "conflicting_table", "missing_source", "missing_dataset"])
def test_bad_input_fails_before_any_batch_is_submitted(case: str, emulator: Any, bq_emulator: LocalBigQuery,
                                                       dataset: str, ws: str, tmp_path: Any) -> None:
    from google.cloud import bigquery

    prefix = f"b{uuid.uuid4().hex[:6]}"
    seed_tickets(bq_emulator, f"{dataset}.tickets", 50, prefix)
    rows, destination = f"bq://{dataset}.tickets", f"bq://{dataset}.triage"
    if case == "unknown_scheme":
        destination = f"nosuch://bucket/{tmp_path.name}/out.jsonl"
    elif case == "conflicting_table":
        bq_emulator.client().create_table(bigquery.Table(f"{dataset}.triage", schema=[
            bigquery.SchemaField("key", "STRING"), bigquery.SchemaField("priority", "STRING")]))
    elif case == "missing_source":
        rows = f"bq://{dataset}.no_such_tickets"
    else:
        destination = f"bq://{bq_emulator.project}.no_such_dataset.triage"
    before = stats(emulator)
    dag_run = run_dag("llmb_gcp", {"rows": rows, "destination": destination, "workspace": ws})
    after = stats(emulator)
    assert task_states(dag_run) == {"triage": "failed"}
    assert (after["batches_created"], after["files_uploaded"]) == (before["batches_created"],
                                                                   before["files_uploaded"])


def test_a_sink_object_with_keyword_options_is_templated_and_used(emulator: Any, bq_emulator: LocalBigQuery,
                                                                  dataset: str, ws: str) -> None:
    prefix = f"s{uuid.uuid4().hex[:6]}"
    seed_tickets(bq_emulator, f"{dataset}.tickets", 40, prefix)
    dag_run = run_dag("llmb_gcp_sink_object", {"rows": f"bq://{dataset}.tickets",
                                               "destination": f"bq://{dataset}.triage", "workspace": ws})
    assert task_states(dag_run) == {"triage": "success"}
    assert xcom(dag_run, "triage")["landed"]["mode"] == "append"
    rows = query(bq_emulator, f"SELECT key, parsed.priority AS p FROM `{dataset}.triage` ORDER BY key")
    assert len(rows) == 40 and all(1 <= r["p"] <= 5 for r in rows)


def test_a_mapped_task_over_3_inputs_keeps_the_rows_of_all_3(emulator: Any, bq_emulator: LocalBigQuery,
                                                             dataset: str, ws: str) -> None:
    prefix, target = f"m{uuid.uuid4().hex[:6]}", f"{dataset}.triage"
    dag_run = run_dag("llmb_gcp_mapped", {"prefix": prefix, "per_input": 40, "destination": f"bq://{target}",
                                          "workspace": ws})
    mapped = sorted((ti.map_index, ti.state) for ti in dag_run.get_task_instances() if ti.task_id == "triage")
    assert mapped == [(0, "success"), (1, "success"), (2, "success")]
    got = query(bq_emulator, f"SELECT map_index, COUNT(*) AS n, COUNT(DISTINCT key) AS k, "
                             f"COUNTIF(STARTS_WITH(key, CONCAT('{prefix}-', CAST(map_index AS STRING), '-'))) AS own "
                             f"FROM `{target}` GROUP BY 1 ORDER BY 1")
    assert got == [{"map_index": i, "n": 40, "k": 40, "own": 40} for i in range(3)]
    leftovers = [t.table_id for t in bq_emulator.client().list_tables(dataset) if "__llmb_stage_" in t.table_id]
    assert leftovers == []


@pytest.mark.parametrize(("mode", "copies"), [("", 1), ("?mode=history", 2)])
def test_two_nightly_runs_over_the_same_rows(mode: str, copies: int, emulator: Any, bq_emulator: LocalBigQuery,
                                             dataset: str, ws: str) -> None:
    """Default ``merge``: one row per key, the latest run's (answered from the request cache, paid once).
    ``history``: one copy per run."""
    prefix, target = f"n{uuid.uuid4().hex[:6]}", f"{dataset}.triage"
    seed_tickets(bq_emulator, f"{dataset}.tickets", 60, prefix)
    conf = {"rows": f"bq://{dataset}.tickets", "destination": f"bq://{target}{mode}", "workspace": ws}
    before = stats(emulator)
    runs = [run_dag("llmb_gcp", conf) for _ in range(2)]
    assert [task_states(r) for r in runs] == [{"triage": "success"}] * 2 and runs[0].run_id != runs[1].run_id
    assert set(paid(before, stats(emulator), prefix).values()) == {1}  # the second night paid nothing
    got = query(bq_emulator, f"SELECT run_id, COUNT(*) AS n, COUNT(DISTINCT key) AS k, COUNTIF(cached) AS cached "
                             f"FROM `{target}` GROUP BY 1 ORDER BY n")
    latest = {"run_id": runs[1].run_id, "n": 60, "k": 60, "cached": 60}
    expected = [latest] if copies == 1 else [{"run_id": runs[0].run_id, "n": 60, "k": 60, "cached": 0}, latest]
    assert sorted(got, key=lambda r: r["run_id"] != runs[0].run_id) == expected


def test_relanding_a_finished_run_says_nothing_is_sent(emulator: Any, bq_emulator: LocalBigQuery, dataset: str,
                                                       ws: str, capfd: pytest.CaptureFixture[str]) -> None:
    prefix, target = f"r{uuid.uuid4().hex[:6]}", f"{dataset}.triage"
    seed_tickets(bq_emulator, f"{dataset}.tickets", 30, prefix)
    capfd.readouterr()
    dag_run = run_dag("llmb_gcp_flaky", {"rows": f"bq://{dataset}.tickets", "destination": f"bq://{target}",
                                         "workspace": ws, "fail_after_landing": True,
                                         "dead_destination": ""})  # params of an earlier run must not leak
    assert task_states(dag_run) == {"triage": "success"} and dag_run.get_task_instances()[0].try_number == 2
    out = capfd.readouterr()  # task logs go to the console (structlog), not to logging handlers
    states = [line for line in (out.out + out.err).splitlines() if "Run state:" in line]
    assert len(states) == 2 and "30 to send in 1 chunk(s)" in states[0]
    assert "to send in" not in states[1]
    assert ("re-attaching: 1 batch(es) already created, every row answered: nothing new to send; landing the "
            "results again") in states[1]
    assert query(bq_emulator, f"SELECT COUNT(*) AS n FROM `{target}`") == [{"n": 30}]
