"""BigQuerySink on bqemulator: typed table, idempotent re-landing per mode, checks before submit."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import pytest

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.google.emulators import LocalBigQuery, LocalGcs, free_port
from airflow_llm_batch.sinks import open_sink
from airflow_llm_batch.sinks.bigquery import BigQuerySink, BigQueryUnavailableError
from tests.gcp.fixtures import unique_name
from tests.sinks.helpers import context, result_rows

pytestmark = pytest.mark.usefixtures("gcp_connection")


@pytest.fixture
def dataset(bq_emulator: LocalBigQuery) -> str:
    created = bq_emulator.client().create_dataset(unique_name("sink"))
    return f"{bq_emulator.project}.{created.dataset_id}"


def query(bq: LocalBigQuery, sql: str) -> list[dict[str, Any]]:
    return [dict(r.items()) for r in bq.client().query(sql).result()]


def counts(bq: LocalBigQuery, table: str) -> tuple[int, int]:
    (row,) = query(bq, f"SELECT COUNT(*) AS n, COUNT(DISTINCT CONCAT(run_id, '/', key)) AS k FROM `{table}`")
    return row["n"], row["k"]


def test_creates_a_typed_table_and_lands_every_row(bq_emulator: LocalBigQuery, dataset: str) -> None:
    table = f"{dataset}.triage"
    sink = open_sink(f"bq://{table}")
    assert isinstance(sink, BigQuerySink)
    sink.check(context())
    landed = sink.write(result_rows(1000), context())
    assert landed == {"uri": f"bq://{table}", "table": table, "mode": "merge", "rows": 1000, "succeeded": 900,
                      "failed": 100}
    schema = {f.name: (f.field_type, f.mode) for f in bq_emulator.client().get_table(table).schema}
    assert schema["label"] == ("STRING", "NULLABLE") and schema["score"] == ("INT64", "NULLABLE")
    assert schema["ratio"] == ("FLOAT64", "NULLABLE") and schema["ok"] == ("BOOL", "NULLABLE")
    assert schema["tags"] == ("STRING", "REPEATED") and schema["detail"] == ("RECORD", "NULLABLE")
    assert schema["meta"] == ("JSON", "NULLABLE") and schema["key"] == ("STRING", "REQUIRED")
    assert schema["run_id"] == ("STRING", "REQUIRED") and schema["landed_at"] == ("TIMESTAMP", "REQUIRED")
    (ok,) = query(bq_emulator, f"SELECT * FROM `{table}` WHERE key = 'k00005'")
    assert (ok["status"], ok["label"], ok["score"], ok["ratio"], ok["ok"]) == ("succeeded", "label 5", 5, 1.25, False)
    assert ok["tags"] == ["a", "t2"] and ok["detail"] == {"note": "n5", "n": 5} and ok["meta"] == {"i": 5}
    assert (ok["input_tokens"], ok["output_tokens"], ok["cached_input_tokens"]) == (11, 5, 2)
    assert ok["extra"] == {"ticket": "T5"} and (ok["dag_id"], ok["task_id"], ok["map_index"]) == ("dag", "task", -1)
    (bad,) = query(bq_emulator, f"SELECT * FROM `{table}` WHERE key = 'k00003'")
    assert (bad["status"], bad["error_code"], bad["label"], bad["output"]) == ("failed", "invalid_output", None,
                                                                               "{not json")
    leftovers = [t.table_id for t in bq_emulator.client().list_tables(dataset) if "__llmb_stage_" in t.table_id]
    assert leftovers == []


def test_merge_keeps_one_row_per_key_for_the_task_with_the_latest_runs_answer(bq_emulator: LocalBigQuery,
                                                                             dataset: str) -> None:
    table = f"{dataset}.merged"
    sink = open_sink(f"bq://{table}")  # mode=merge is the default
    sink.write(result_rows(500), context("run-1"))
    sink.write(result_rows(500, tag=" again"), context("run-1"))  # a retry of the same run
    sink.write(result_rows(500, tag=" nightly"), context("run-2"))  # the next night, same catalog
    assert counts(bq_emulator, table) == (500, 500)
    assert query(bq_emulator, f"SELECT DISTINCT run_id FROM `{table}`") == [{"run_id": "run-2"}]
    assert query(bq_emulator, f"SELECT label FROM `{table}` WHERE key = 'k00004'") == [{"label": "label 4 nightly"}]
    sink.write(result_rows(50), context("run-1", task_id="other"))  # another task's rows are its own
    # a re-landing of run-3 holds exactly its latest results; keys it never had keep their last answer
    sink.write(result_rows(200, prefix="n"), context("run-3"))
    sink.write(result_rows(100, prefix="n"), context("run-3"))
    got = query(bq_emulator, f"SELECT task_id, run_id, COUNT(*) AS n FROM `{table}` GROUP BY 1, 2 ORDER BY 1, 2")
    assert got == [{"task_id": "other", "run_id": "run-1", "n": 50}, {"task_id": "task", "run_id": "run-2", "n": 500},
                   {"task_id": "task", "run_id": "run-3", "n": 100}]


def test_merge_keeps_the_rows_of_every_mapped_instance(bq_emulator: LocalBigQuery, dataset: str) -> None:
    table = f"{dataset}.mapped"
    for index in range(3):
        open_sink(f"bq://{table}").write(result_rows(100, prefix=f"m{index}-"), context("run-1", map_index=index))
    open_sink(f"bq://{table}").write(result_rows(60, prefix="m1-"), context("run-1", map_index=1))  # a retry of [1]
    got = query(bq_emulator, f"SELECT map_index, COUNT(*) AS n FROM `{table}` GROUP BY 1 ORDER BY 1")
    assert got == [{"map_index": 0, "n": 100}, {"map_index": 1, "n": 60}, {"map_index": 2, "n": 100}]


def test_history_keeps_one_copy_per_run_and_relanding_replaces_the_runs_rows(bq_emulator: LocalBigQuery,
                                                                             dataset: str) -> None:
    table = f"{dataset}.history"
    sink = open_sink(f"bq://{table}?mode=history")
    sink.write(result_rows(500), context("run-1"))
    sink.write(result_rows(500, tag=" again"), context("run-1"))
    assert counts(bq_emulator, table) == (500, 500)
    assert query(bq_emulator, f"SELECT label FROM `{table}` WHERE key = 'k00004'") == [{"label": "label 4 again"}]
    sink.write(result_rows(500), context("run-2"))
    assert counts(bq_emulator, table) == (1000, 1000)
    # the run's rows are exactly the latest landing: rows it no longer has are removed
    sink.write(result_rows(200), context("run-1"))
    assert counts(bq_emulator, table) == (700, 700)


def test_append_mode_deletes_the_runs_rows_before_loading(bq_emulator: LocalBigQuery, dataset: str) -> None:
    table = f"{dataset}.appended"
    for _ in range(2):
        open_sink(f"bq://{table}", mode="append").write(result_rows(300), context("run-1"))
    open_sink(f"bq://{table}", mode="append").write(result_rows(300), context("run-2"))
    assert counts(bq_emulator, table) == (600, 600)


def test_replace_partition_keeps_one_landing_per_day(bq_emulator: LocalBigQuery, dataset: str) -> None:
    table = f"{dataset}.daily"

    def land(day: str, run_id: str, rows: int) -> None:
        open_sink(f"bq://{table}?mode=replace_partition&partition_date={day}").write(result_rows(rows),
                                                                                    context(run_id))

    land("2026-11-20", "scheduled__2026-11-20", 100)
    land("2026-11-21", "scheduled__2026-11-21", 100)
    land("2026-11-21", "manual__2026-11-22T08:00", 40)  # a manual re-run of the day, with a new run_id
    got = query(bq_emulator, f"SELECT partition_date AS d, run_id, COUNT(*) AS n FROM `{table}` "
                             f"GROUP BY 1, 2 ORDER BY 1")
    assert got == [{"d": dt.date(2026, 11, 20), "run_id": "scheduled__2026-11-20", "n": 100},
                   {"d": dt.date(2026, 11, 21), "run_id": "manual__2026-11-22T08:00", "n": 40}]
    partitioning = bq_emulator.client().get_table(table).time_partitioning
    assert partitioning.field == "partition_date" and partitioning.type_ == "DAY"


def test_parsed_as_record_and_json(bq_emulator: LocalBigQuery, dataset: str) -> None:
    for how in ("record", "json"):
        table = f"{dataset}.parsed_{how}"
        open_sink(f"bq://{table}?parsed_as={how}").write(result_rows(20), context())
        (row,) = query(bq_emulator, f"SELECT parsed FROM `{table}` WHERE key = 'k00002'")
        assert row["parsed"]["detail"] == {"note": "n2", "n": 2}
    # no response schema (text answers): parsed is a JSON column
    table = f"{dataset}.text_answers"
    open_sink(f"bq://{table}").write(result_rows(5), context(schema={}))
    schema = {f.name: f.field_type for f in bq_emulator.client().get_table(table).schema}
    assert schema["parsed"] == "JSON" and "label" not in schema


def test_a_new_response_field_adds_a_column(bq_emulator: LocalBigQuery, dataset: str) -> None:
    table = f"{dataset}.evolving"
    small = {"type": "object", "properties": {"label": {"type": "string"}}}
    open_sink(f"bq://{table}?mode=history").write(result_rows(10), context(schema=small))
    open_sink(f"bq://{table}?mode=history").write(result_rows(10), context("run-2"))
    schema = {f.name: f.field_type for f in bq_emulator.client().get_table(table).schema}
    assert schema["score"] == "INT64" and schema["detail"] == "RECORD"
    assert counts(bq_emulator, table) == (20, 20)


def test_check_names_the_conflicting_column(bq_emulator: LocalBigQuery, dataset: str) -> None:
    from google.cloud import bigquery

    table = f"{dataset}.conflict"
    bq_emulator.client().create_table(bigquery.Table(table, schema=[
        bigquery.SchemaField("key", "STRING"), bigquery.SchemaField("score", "STRING")]))
    with pytest.raises(InvalidInputError, match="column 'score' is STRING in the table but the results need INT64"):
        open_sink(f"bq://{table}").check(context())


@pytest.mark.parametrize(("uri", "message"), [
    ("bq://just-a-table", "expected bq://project.dataset.table"),
    ("bq://test-project.ds.t?mode=upsert", "mode='upsert'"),
    ("bq://test-project.ds.t?mode=replace_partition", "needs partition_date"),
    ("bq://test-project.ds.t?partition_date=21/11/2026", "not a date"),
    ("bq://test-project.ds.t?colour=blue", "unknown options"),
    ("bq://test-project?query=SELECT 1", "is a query"),
])
def test_check_refuses_bad_uris_and_options(uri: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        open_sink(uri).check(context())


def test_check_refuses_a_missing_dataset_and_colliding_fields(dataset: str) -> None:
    with pytest.raises(InvalidInputError, match=r"dataset test-project\.no_such_dataset does not exist"):
        open_sink("bq://test-project.no_such_dataset.t").check(context())
    colliding = {"type": "object", "properties": {"status": {"type": "string"}}}
    with pytest.raises(InvalidInputError, match=r"\['status'\] collide"):
        open_sink(f"bq://{dataset}.t").check(context(schema=colliding))
    open_sink(f"bq://{dataset}.t?parsed_as=record").check(context(schema=colliding))


def test_unreachable_bigquery_fails_clearly_and_quickly(dataset: str, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AIRFLOW_CONN_GCP_DEAD", json.dumps(
        {"conn_type": "google_cloud_platform", "extra": {"project": "test-project", "bigquery_endpoint": dead}}))
    sink = open_sink(f"bq://{dataset}.t?conn_id=gcp_dead&retry_deadline=1")
    started = time.monotonic()
    with pytest.raises(BigQueryUnavailableError, match=r"BigQuery unavailable while landing .* a retry of the task"):
        sink.write(result_rows(10), context())
    with pytest.raises(BigQueryUnavailableError, match="Nothing was submitted"):
        sink.check(context())
    assert time.monotonic() - started < 30


def test_staging_through_gcs(bq_emulator: LocalBigQuery, gcs_emulator: LocalGcs, dataset: str) -> None:
    bucket = gcs_emulator.client().create_bucket(unique_name("stage").replace("_", "-"))
    table = f"{dataset}.via_gcs"
    open_sink(f"bq://{table}?staging_uri=gs://{bucket.name}/tmp").write(result_rows(200), context())
    assert counts(bq_emulator, table) == (200, 200)
    assert list(bucket.list_blobs()) == []


def test_a_workspace_failure_while_staging_keeps_its_own_error_and_lands_nothing(bq_emulator: LocalBigQuery,
                                                                                dataset: str) -> None:
    table = f"{dataset}.partial"
    open_sink(f"bq://{table}").write(result_rows(50), context())

    def broken() -> Any:
        yield from result_rows(30, tag=" v2")
        raise FileNotFoundError("results/00001.jsonl vanished")

    with pytest.raises(FileNotFoundError, match="vanished"):
        open_sink(f"bq://{table}").write(broken(), context())
    assert counts(bq_emulator, table) == (50, 50)
    assert query(bq_emulator, f"SELECT COUNT(*) AS n FROM `{table}` WHERE label LIKE '% v2'") == [{"n": 0}]


def answered(rows: Any, every: int = 3) -> list[Any]:
    """The rows with every ``every``-th one answered in real time, the next one from the cache."""
    out = list(rows)
    for i, row in enumerate(out):
        row.answered_by = {0: "realtime", 1: "cache"}.get(i % every, "batch")
    return out


def test_answered_by_is_a_nullable_string_column(bq_emulator: LocalBigQuery, dataset: str) -> None:
    table = f"{dataset}.paths"
    open_sink(f"bq://{table}").write(answered(result_rows(9)), context())
    schema = {f.name: (f.field_type, f.mode) for f in bq_emulator.client().get_table(table).schema}
    assert schema["answered_by"] == ("STRING", "NULLABLE")
    got = {r["key"]: r["answered_by"] for r in query(bq_emulator, f"SELECT key, answered_by FROM `{table}`")}
    assert got == {r.key: r.answered_by for r in answered(result_rows(9))}
    assert set(got.values()) == {"realtime", "cache", "batch"}
    (row,) = query(bq_emulator, f"SELECT extra FROM `{table}` WHERE key = 'k00000'")
    assert row["extra"] == {"ticket": "T0"}  # no longer tucked into extra


def test_a_table_from_before_answered_by_gets_the_column_added(bq_emulator: LocalBigQuery, dataset: str) -> None:
    from google.cloud import bigquery

    client = bq_emulator.client()
    model, old = f"{dataset}.model", f"{dataset}.older"
    open_sink(f"bq://{model}").write(result_rows(1), context())  # the current layout, to copy without the column
    client.create_table(bigquery.Table(old, schema=[f for f in client.get_table(model).schema
                                                    if f.name != "answered_by"]))
    assert "answered_by" not in {f.name for f in client.get_table(old).schema}
    open_sink(f"bq://{old}").check(context())  # a missing column is no conflict: it is added on landing
    open_sink(f"bq://{old}?mode=history").write(answered(result_rows(6)), context())
    schema = {f.name: (f.field_type, f.mode) for f in client.get_table(old).schema}
    assert schema["answered_by"] == ("STRING", "NULLABLE")
    got = {r["key"]: r["answered_by"] for r in query(bq_emulator, f"SELECT key, answered_by FROM `{old}`")}
    assert got == {r.key: r.answered_by for r in answered(result_rows(6))}
