"""Vertex AI DAGs the test-suite runs with dag.test() against the bundled emulator, whose jobs read and
write the GCS and BigQuery emulators. Everything variable comes in through params: ``rows`` and
``destination`` URIs (bq://, gs://, file://), ``workspace``, and ``conn_id`` (the Vertex connection,
which says where chunks are staged and where the jobs write)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from airflow.sdk import DAG
from pydantic import BaseModel, Field

from airflow_llm_batch.operators import LLMBatchOperator

PARAMS: dict[str, Any] = {"rows": "", "destination": "", "workspace": "", "conn_id": "vertex_emulator"}


class Tone(str, Enum):
    playful = "playful"
    premium = "premium"
    practical = "practical"


class Description(BaseModel):
    """What the model writes for one catalog item."""

    headline: str = Field(description="The item as read, verbatim.")
    tone: Tone
    bullet_points: list[str] = Field(max_length=3)
    reading_minutes: int = Field(ge=1, le=5)


def describe(task_id: str = "describe", operator: type[LLMBatchOperator] = LLMBatchOperator,
             **kwargs: Any) -> LLMBatchOperator:
    return operator(
        task_id=task_id, provider="vertex", conn_id="{{ params.conn_id }}", model="gemini-2.5-flash",
        rows="{{ params.rows }}", key="product_id",
        system_prompt="You write short, factual product descriptions for an online catalog.",
        prompt="Item {{ row.product_id }}: {{ row.name }} ({{ row.category }}), {{ row.price }} EUR",
        request_params={"temperature": 0.2, "max_output_tokens": 400}, response_format=Description,
        destination="{{ params.destination }}", workspace="{{ params.workspace }}", max_rows_per_chunk=1000,
        poll_interval=0.2, **kwargs,
    )


class CrashAfterWaitOperator(LLMBatchOperator):
    """Simulates a worker dying after its jobs were created and ended, on the first try only."""

    def execute_complete(self, context: Any, event: Any = None) -> Any:
        if context["ti"].try_number == 1:
            raise RuntimeError("simulated worker crash after submit")
        return super().execute_complete(context, event)


with DAG("llmb_vertex", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS, catchup=False):
    describe(retries=0)

with DAG("llmb_vertex_single_attempt", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS,
         catchup=False):
    describe(retries=0, max_attempts=1)

with DAG("llmb_vertex_retry", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS, catchup=False):
    describe(operator=CrashAfterWaitOperator, retries=1, retry_delay=0)
