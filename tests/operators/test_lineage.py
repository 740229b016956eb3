"""OpenLineage facets of the operators, built from the rendered rows source and destination, and picked
up by the openlineage provider's own extractor machinery after a real dag.test() run."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from airflow.utils.state import TaskInstanceState

from airflow_llm_batch.google.uris import bigquery_query_uri
from airflow_llm_batch.operators import LLMBatchOperator, LLMBatchResultsOperator
from tests.airflow_helpers import get_dag, run_dag, task_states
from tests.operators.test_llm_batch_operator import write_rows


def _names(datasets: list[Any]) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


def _operator(rows: str, destination: str | None) -> LLMBatchOperator:
    return LLMBatchOperator(task_id="t", model="gpt-4o-mini", rows=rows, key="id", prompt="{{ row.text }}",
                            destination=destination)


def _rendered(op: LLMBatchOperator, context: dict[str, Any]) -> LLMBatchOperator:
    op.rows = op.render_template(op.rows, context)
    op.destination = op.render_template(op.destination, context)
    return op


def test_a_file_to_file_run_reads_and_writes_file_datasets() -> None:
    op = _rendered(_operator("file:///data/in/{{ ds }}.jsonl", "/data/out/{{ ds }}.jsonl"), {"ds": "2026-12-01"})
    lineage = op.get_openlineage_facets_on_complete(None)
    assert _names(lineage.inputs) == [("file", "/data/in/2026-12-01.jsonl")]
    assert _names(lineage.outputs) == [("file", "/data/out/2026-12-01.jsonl")]


def test_a_gcs_to_bigquery_run_reads_a_bucket_object_and_writes_a_table() -> None:
    op = _rendered(_operator("gs://acme-support/tickets/{{ ds }}.jsonl?conn_id=gcp",
                             "bq://acme-proj.support.triage?mode=append"), {"ds": "2026-12-01"})
    lineage = op.get_openlineage_facets_on_complete(None)
    assert _names(lineage.inputs) == [("gs://acme-support", "tickets/2026-12-01.jsonl")]
    assert _names(lineage.outputs) == [("bigquery", "acme-proj.support.triage")]


def test_a_bigquery_query_reads_each_table_it_names_and_carries_the_sql() -> None:
    sql = "SELECT t.id, t.body FROM `acme-proj.support.tickets` t JOIN support.customers c USING (id)"
    op = _operator(bigquery_query_uri(sql, project="acme-proj"), "s3://acme-out/triage.parquet")
    lineage = op.get_openlineage_facets_on_complete(None)
    assert _names(lineage.inputs) == [("bigquery", "acme-proj.support.customers"),
                                      ("bigquery", "acme-proj.support.tickets")]
    assert _names(lineage.outputs) == [("s3://acme-out", "triage.parquet")]
    assert lineage.job_facets["sql"].query == sql


def test_rows_in_xcom_and_results_in_xcom_are_no_dataset() -> None:
    lineage = _operator("x", None).get_openlineage_facets_on_complete(None)
    op = LLMBatchOperator(task_id="t2", model="m", rows=[{"id": 1}], key="id", prompt="p")
    assert _names(op.get_openlineage_facets_on_complete(None).inputs) == []
    assert _names(lineage.outputs) == []


def test_the_results_operator_writes_its_destination() -> None:
    op = LLMBatchResultsOperator(task_id="land", handle={}, destination="gs://acme-out/triage/2026-12-01.jsonl")
    lineage = op.get_openlineage_facets_on_complete(None)
    assert _names(lineage.outputs) == [("gs://acme-out", "triage/2026-12-01.jsonl")]
    assert lineage.inputs == []


def test_the_openlineage_provider_extracts_the_datasets_of_a_finished_task(
        tmp_path: Path, emulator: Any, airflow_db: Path) -> None:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.providers.openlineage.extractors import ExtractorManager
    from airflow.providers.openlineage.extractors.base import DefaultExtractor

    rows, dest = write_rows(tmp_path / "rows.jsonl", 5), tmp_path / "out.jsonl"
    dag_run = run_dag("llmb_operator", {"rows": f"file://{rows}", "destination": f"file://{dest}",
                                        "workspace": f"file://{tmp_path}/ws"})
    assert task_states(dag_run) == {"batch": "success"}
    (ti,) = dag_run.get_task_instances()
    # the task as the worker held it when it finished: its fields rendered as Airflow stored them
    # (on a copy: the DAG object is shared with the other tests, which must keep its templates)
    task = copy.deepcopy(get_dag("llmb_operator").get_task("batch"))
    for name, value in RenderedTaskInstanceFields.get_templated_fields(ti).items():
        if name in ("rows", "destination"):
            setattr(task, name, value)
    assert get_dag("llmb_operator").get_task("batch").rows == "{{ params.rows }}"
    manager = ExtractorManager()
    assert manager.get_extractor_class(task) is DefaultExtractor
    lineage = manager.extract_metadata(dag_run, task, TaskInstanceState.SUCCESS, ti)
    assert _names(lineage.inputs) == [("file", str(rows))]
    assert _names(lineage.outputs) == [("file", str(dest))]
