"""Daily retention of the LLM batch workspace: run folders (rendered prompts, which may hold personal
data, and downloaded answers) and request-cache entries last written more than ``older_than`` ago are
deleted. A run folder whose batches are still open is kept (a later try re-attaches to them).

The task calls the same function as ``airflow-llm-batch clean --older-than 30d``; its return value (an
XCom) counts what went: run folders, cache entries and bytes, never their content. Trigger it with
``{"dry_run": true}`` to see what would go without deleting anything.

The workspace is the ``[llm_batch] workspace`` setting (``AIRFLOW__LLM_BATCH__WORKSPACE``), unless the
run gives ``{"workspace": "gs://bucket/llm_batch_workspace"}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, task

from airflow_llm_batch.retention import clean_workspace

with DAG(
    dag_id="llm_batch_maintenance",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"older_than": "30d", "dry_run": False, "workspace": ""},
    tags=["llm-batch", "maintenance"],
):

    @task
    def clean_llm_batch_workspace(params: dict[str, Any]) -> dict[str, Any]:
        report = clean_workspace(params["workspace"] or None, older_than=params["older_than"],
                                 dry_run=bool(params["dry_run"]))
        print(report.describe())
        return {"dry_run": report.dry_run, "run_folders": len(report.deleted), "run_bytes": report.run_bytes,
                "cache_entries": report.cache_entries, "cache_bytes": report.cache_bytes,
                "kept_open": len(report.kept_open)}

    clean_llm_batch_workspace()
