"""DAGs the test-suite runs with dag.test(); everything variable comes in through params."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG
from pydantic import BaseModel, Field

from airflow_llm_batch.operators import LLMBatchOperator, LLMBatchResultsOperator, SubmitLLMBatchOperator
from airflow_llm_batch.sensors.batch import LLMBatchSensor

CONN = "llm_emulator"
PARAMS = {"rows": "", "destination": "", "workspace": ""}


class Verdict(BaseModel):
    label: str = Field(max_length=400)
    score: int = Field(ge=0, le=10)


with DAG("llmb_operator", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS, catchup=False):
    LLMBatchOperator(
        task_id="batch", conn_id=CONN, model="gpt-4o-mini", rows="{{ params.rows }}", key="id",
        prompt="Item {{ row.id }}: {{ row.text }}", system_prompt="Judge the item.",
        response_format=Verdict, destination="{{ params.destination }}", workspace="{{ params.workspace }}",
        max_rows_per_chunk=1000, poll_interval=0.2, retries=0,
    )

with DAG("llmb_split", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS, catchup=False):
    submit = SubmitLLMBatchOperator(
        task_id="submit", conn_id=CONN, model="gpt-4o-mini", rows="{{ params.rows }}", key="id",
        prompt="{{ row.text }}", workspace="{{ params.workspace }}", max_rows_per_chunk=400,
    )
    wait = LLMBatchSensor(task_id="wait", handle=submit.output, poll_interval=0.2)
    land = LLMBatchResultsOperator(task_id="land", handle=submit.output, destination="{{ params.destination }}")
    submit >> wait >> land

with DAG("llmb_sync", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS, catchup=False):
    LLMBatchOperator(
        task_id="batch", conn_id=CONN, model="gpt-4o-mini", rows="{{ params.rows }}", key="id",
        prompt="{{ row.text }}", workspace="{{ params.workspace }}", deferrable=False, poll_interval=0.2,
        retries=0,
    )


class CrashAfterWaitOperator(LLMBatchOperator):
    """Simulates a worker dying after its batches were submitted and ended, on the first try only."""

    def execute_complete(self, context, event=None):  # type: ignore[no-untyped-def]
        if context["ti"].try_number == 1:
            raise RuntimeError("simulated worker crash after submit")
        return super().execute_complete(context, event)


with DAG("llmb_retry", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS, catchup=False):
    CrashAfterWaitOperator(
        task_id="batch", conn_id=CONN, model="gpt-4o-mini", rows="{{ params.rows }}", key="id",
        prompt="{{ row.text }}", destination="{{ params.destination }}", workspace="{{ params.workspace }}",
        max_rows_per_chunk=300, poll_interval=0.2, retries=1, retry_delay=0,
    )


with DAG("llmb_cache", schedule=None, start_date=datetime(2026, 1, 1),
         params={**PARAMS, "max_cost_usd": None, "dry_run": False}, catchup=False):
    LLMBatchOperator(
        task_id="batch", conn_id=CONN, model="gpt-4o-mini", rows="{{ params.rows }}", key="id",
        prompt="{{ row.text }}", destination="{{ params.destination }}", workspace="{{ params.workspace }}",
        poll_interval=0.2, retries=0, cache="read_write",
    )

with DAG("llmb_cache_conn", schedule=None, start_date=datetime(2026, 1, 1),
         params={**PARAMS, "conn_id": CONN, "mode": "batch"}, catchup=False):
    LLMBatchOperator(
        task_id="batch", conn_id="{{ params.conn_id }}", model="gpt-4o-mini", rows="{{ params.rows }}", key="id",
        prompt="{{ row.text }}", destination="{{ params.destination }}", workspace="{{ params.workspace }}",
        poll_interval=0.2, retries=0, cache="read_write", mode="{{ params.mode }}",
    )

with DAG("llmb_budget", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS, catchup=False):
    LLMBatchOperator(
        task_id="batch", conn_id=CONN, model="gpt-4o-mini", rows="{{ params.rows }}", key="id",
        prompt="{{ row.text }}", destination="{{ params.destination }}", workspace="{{ params.workspace }}",
        request_params={"max_tokens": 500}, max_cost_usd=0.0001, poll_interval=0.2, retries=3,
    )
    LLMBatchOperator(
        task_id="dry", conn_id=CONN, model="gpt-4o-mini", rows="{{ params.rows }}", key="id",
        prompt="{{ row.text }}", workspace="{{ params.workspace }}", dry_run=True, retries=0,
    )


with DAG("llmb_decorator", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS, catchup=False):
    from airflow.sdk import task

    @task.llm_batch_job(conn_id=CONN, model="gpt-4o-mini", key="id", prompt="Row {{ row.id }} says {{ row.text }}",
                    workspace="{{ params.workspace }}", poll_interval=0.2, retries=0)
    def computed_rows(params: dict | None = None) -> list[dict]:
        return [{"id": f"d{i}", "text": f"{{{{ computed {i} }}}}"} for i in range(25)]

    computed_rows()
