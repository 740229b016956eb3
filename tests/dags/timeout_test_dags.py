"""DAGs of tests/operators/test_timeout.py: the operator's own `timeout` passes while its batches run.

Both give up 2 s after the first submit and poll every 0.2 s, with no Airflow retry; one cancels its
batches when it gives up, the other leaves them running.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_llm_batch.operators import LLMBatchOperator

CONN = "llm_emulator"
PARAMS = {"rows": "", "destination": "", "workspace": ""}

for dag_id, cancel in (("llmb_timeout_cancel", True), ("llmb_timeout_leave", False)):
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS, catchup=False):
        LLMBatchOperator(
            task_id="batch", conn_id=CONN, model="gpt-4o-mini", rows="{{ params.rows }}", key="id",
            prompt="{{ row.text }}", destination="{{ params.destination }}", workspace="{{ params.workspace }}",
            max_rows_per_chunk=50, timeout=2, cancel_on_timeout=cancel, poll_interval=0.2, retries=0,
        )
