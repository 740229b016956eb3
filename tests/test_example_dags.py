"""Every example DAG imports cleanly in Airflow's own parser."""

from __future__ import annotations

import os
from pathlib import Path

from airflow.dag_processing.dagbag import DagBag

EXAMPLES = Path(__file__).resolve().parent.parent / "example_dags"


def test_example_dags_import_without_errors() -> None:
    bag = DagBag(dag_folder=str(EXAMPLES))
    assert not bag.import_errors, bag.import_errors
    assert {"invoice_extraction_anthropic", "nightly_ticket_triage"} <= set(bag.dag_ids)


def test_invoice_example_uses_anthropic_with_a_schema() -> None:
    bag = DagBag(dag_folder=str(EXAMPLES / "invoice_extraction_anthropic.py"))
    task = bag.dags["invoice_extraction_anthropic"].get_task("extract_invoices")
    assert (task.provider, task.conn_id, task.key) == ("anthropic", "anthropic_default", "invoice_id")
    assert task.request_params["cache_system_prompt"] is True
    assert task.response_format.__name__ == "Invoice"


def test_invoice_example_uris_default_to_the_day_and_take_overrides() -> None:
    bag = DagBag(dag_folder=str(EXAMPLES / "invoice_extraction_anthropic.py"))
    task = bag.dags["invoice_extraction_anthropic"].get_task("extract_invoices")
    default = {"params": {"invoices_uri": "", "results_uri": ""}, "ds": "2026-11-21"}
    assert task.render_template(task.rows, default) == "file:///tmp/llm-batch-demo/invoices/2026-11-21.jsonl"
    assert task.render_template(task.destination, default).endswith("/invoices-extracted/2026-11-21.jsonl")
    given = {"params": {"invoices_uri": "gs://b/in.jsonl", "results_uri": "gs://b/out.jsonl"}, "ds": "x"}
    assert task.render_template(task.rows, given) == "gs://b/in.jsonl"
    assert task.render_template(task.destination, given) == "gs://b/out.jsonl"


def test_maintenance_example_cleans_the_workspace_daily_through_the_retention_function(tmp_path: Path) -> None:
    bag = DagBag(dag_folder=str(EXAMPLES / "llm_batch_maintenance.py"))
    dag = bag.dags["llm_batch_maintenance"]
    assert not bag.import_errors, bag.import_errors
    assert dag.params["older_than"] == "30d"
    entry = tmp_path / "_cache" / "v1" / "openai" / "ab" / ("ab" * 32 + ".json")
    entry.parent.mkdir(parents=True)
    entry.write_text("{}")
    old = entry.stat().st_mtime - 40 * 86400
    os.utime(entry, (old, old))
    task = dag.get_task("clean_llm_batch_workspace")
    params = {"older_than": "30d", "dry_run": True, "workspace": str(tmp_path)}
    assert task.python_callable(params=params)["cache_entries"] == 1 and entry.exists()
    assert task.python_callable(params={**params, "dry_run": False})["cache_entries"] == 1
    assert not entry.exists()
