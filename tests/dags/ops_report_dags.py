"""A DAG whose run folder the run-report tests read: several batches, a few rows that fail."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_llm_batch.operators import LLMBatchOperator

with DAG("ops_report", schedule=None, start_date=datetime(2026, 1, 1),
         params={"rows": "", "destination": "", "workspace": ""}, catchup=False):
    LLMBatchOperator(
        task_id="batch", conn_id="llm_emulator", model="gpt-4o-mini", rows="{{ params.rows }}", key="id",
        prompt="{{ row.text }}", destination="{{ params.destination }}", workspace="{{ params.workspace }}",
        max_rows_per_chunk=40, poll_interval=0.2, retries=0, min_success_rate=0.5,
    )
