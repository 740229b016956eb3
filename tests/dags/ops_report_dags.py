"""DAGs whose run folder the run-report tests read: several batches, a few rows that fail
(``ops_report`` waits in the triggerer, ``ops_report_worker`` polls on the worker)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG

from airflow_llm_batch.operators import LLMBatchOperator


def report_dag(dag_id: str, **wait: Any) -> DAG:
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1),
             params={"rows": "", "destination": "", "workspace": ""}, catchup=False) as dag:
        LLMBatchOperator(
            task_id="batch", conn_id="llm_emulator", model="gpt-4o-mini", rows="{{ params.rows }}", key="id",
            prompt="{{ row.text }}", destination="{{ params.destination }}", workspace="{{ params.workspace }}",
            max_rows_per_chunk=40, poll_interval=0.2, retries=0, min_success_rate=0.5, **wait,
        )
    return dag


ops_report = report_dag("ops_report")
ops_report_worker = report_dag("ops_report_worker", deferrable=False)
