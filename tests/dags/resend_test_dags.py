"""DAGs of tests/operators/test_resend.py: chunks refused for the enqueued-token limit, and a batch that
vanishes from the provider (404). Rows, destination and workspace come from the run's params."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_llm_batch.operators import LLMBatchOperator

PARAMS = {"rows": "", "destination": "", "workspace": ""}
COMMON = {
    "model": "gpt-4o-mini", "rows": "{{ params.rows }}", "key": "id", "prompt": "{{ row.text }}",
    "destination": "{{ params.destination }}", "workspace": "{{ params.workspace }}", "poll_interval": 0.2,
    "cache": "off",
}
#: the session emulator
SESSION_CONN = "llm_emulator_patient"
#: an emulator the vanish test restarts on a fixed port
RESTARTING_CONN = "llm_emulator_restarting"

for dag_id, extra in {
    "llmb_resend_chunk8": {"conn_id": SESSION_CONN, "max_rows_per_chunk": 8, "retries": 0},
    # one retry allowed: a row that can never fit must fail without using it
    "llmb_resend_chunk4": {"conn_id": SESSION_CONN, "max_rows_per_chunk": 4, "retries": 1,
                           "retry_delay": timedelta(0)},
    "llmb_resend_chunk2": {"conn_id": SESSION_CONN, "max_rows_per_chunk": 2, "retries": 0},
    "llmb_resend_vanish": {"conn_id": RESTARTING_CONN, "max_rows_per_chunk": 50, "retries": 0},
}.items():
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS, catchup=False):
        LLMBatchOperator(task_id="batch", **COMMON, **extra)  # type: ignore[arg-type]
