"""DAGs for the many-workers tests: a try that stops after its batches exist, resumed elsewhere."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.sdk import DAG

from airflow_llm_batch.operators import LLMBatchOperator

CONN = "llm_emulator"
PARAMS = {"rows": "", "destination": "", "workspace": ""}
#: set in the first worker's environment only
STOP_ENV = "LLMB_TEST_STOP_AFTER_SUBMIT"


class StopAfterSubmitOperator(LLMBatchOperator):
    """Stops (as a lost worker would) once its batches were created, on a worker where STOP_ENV is set."""

    def execute_complete(self, context: Any, event: Any = None) -> Any:
        if os.environ.get(STOP_ENV) == "1":
            raise RuntimeError("simulated worker loss after submit")
        return super().execute_complete(context, event)


with DAG("llmb_statestore", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS, catchup=False):
    StopAfterSubmitOperator(
        task_id="batch", conn_id=CONN, model="gpt-4o-mini", rows="{{ params.rows }}", key="id",
        prompt="{{ row.text }}", destination="{{ params.destination }}", workspace="{{ params.workspace }}",
        max_rows_per_chunk=300, poll_interval=0.2, retries=0,
    )
