"""DAGs of the fault matrix (tests/faults): the same job under different operator settings."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_llm_batch.operators import LLMBatchOperator
from tests.faults.rows import CHUNK, PROVIDER_JOBS, emulator_prompt_tokens

PARAMS = {"rows": "", "destination": "", "workspace": ""}
COMMON = {
    "conn_id": "llm_emulator_patient", "model": "gpt-4o-mini", "rows": "{{ params.rows }}", "key": "id",
    "prompt": "{{ row.text }}", "destination": "{{ params.destination }}",
    "workspace": "{{ params.workspace }}", "poll_interval": 0.2, "retries": 0, "cache": "off",
    "max_rows_per_chunk": CHUNK,
}
#: a quarter of the job's prompt tokens: the emulator's enqueued limit and the operator's budget
QUARTER_BUDGET = emulator_prompt_tokens() // 4

for dag_id, extra in {
    "faults_default": {},
    "faults_budget": {"enqueued_token_budget": QUARTER_BUDGET},
    "faults_one_at_a_time": {"max_open_batches": 1},
}.items():
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS, catchup=False):
        LLMBatchOperator(task_id="batch", **COMMON, **extra)  # type: ignore[arg-type]

# the cross-provider matrix (tests/faults/test_fault_matrix_providers.py): one DAG per provider, its
# connection (with a client timeout) set by the test
for job in PROVIDER_JOBS.values():
    with DAG(job.dag_id, schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS, catchup=False):
        LLMBatchOperator(
            task_id="batch", provider=job.provider, conn_id=job.conn_id, model=job.model, rows="{{ params.rows }}",
            key="id", prompt="{{ row.text }}", destination="{{ params.destination }}",
            workspace="{{ params.workspace }}", poll_interval=0.2, retries=0, cache="off",
            max_rows_per_chunk=job.chunk,
        )
