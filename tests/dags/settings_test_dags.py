"""DAGs of tests/operators/test_settings_and_destination.py, run with dag.test()."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_llm_batch.operators import LLMBatchOperator

PARAMS = {"rows": "", "destination": "", "workspace": ""}

# retries=2: a destination that cannot be written must fail the task for good, not be retried
with DAG("llmb_unwritable_destination", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS,
         catchup=False):
    LLMBatchOperator(
        task_id="batch", conn_id="llm_emulator", model="gpt-4o-mini", rows="{{ params.rows }}", key="id",
        prompt="Item {{ row.id }}: {{ row.text }}", destination="{{ params.destination }}",
        workspace="{{ params.workspace }}", poll_interval=0.2, retries=2, retry_delay=timedelta(seconds=0),
    )
