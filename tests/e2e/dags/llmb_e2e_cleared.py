"""The DAG of the end-to-end cleared-task test (tests/e2e/test_task_cleared.py).

It is copied into a fresh dags folder of a real `airflow standalone`; the rows file, destination and
workspace come in through the run's conf, the connection through an AIRFLOW_CONN_* env var.
``cancel_on_kill=False``: a clear then leaves the batches running for the next try to re-attach to
(with the default, the clear cancels them and the next try resends their unanswered rows).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_llm_batch.operators import LLMBatchOperator

DAG_ID = "llmb_e2e_task_cleared"
CONN_ID = "llm_e2e_emulator"

with DAG(DAG_ID, schedule=None, start_date=datetime(2026, 1, 1), catchup=False,
         params={"rows": "", "destination": "", "workspace": ""}):
    LLMBatchOperator(
        task_id="batch", conn_id=CONN_ID, model="gpt-4o-mini", rows="{{ params.rows }}", key="id",
        prompt="Item {{ row.id }}: {{ row.text }}", destination="{{ params.destination }}",
        workspace="{{ params.workspace }}", max_rows_per_chunk=200, poll_interval=1.0, retries=0,
        cancel_on_kill=False,
    )
