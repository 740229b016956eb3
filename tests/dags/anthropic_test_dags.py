"""Anthropic DAGs the test-suite runs with dag.test() against the emulator; variables come through params."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG
from pydantic import BaseModel, Field

from airflow_llm_batch.operators import LLMBatchOperator

CONN = "anthropic_emulator"
PARAMS = {"rows": "", "destination": "", "workspace": ""}


class Extraction(BaseModel):
    """What the model extracts from one row."""

    source: str = Field(description="The row as read, verbatim.")
    topic: str = Field(max_length=40)
    urgency: int = Field(ge=1, le=5)


with DAG("llmb_anthropic_operator", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS,
         catchup=False):
    LLMBatchOperator(
        task_id="extract", provider="anthropic", conn_id=CONN, model="claude-haiku-4-5",
        rows="{{ params.rows }}", key="id", prompt="Row {{ row.id }}: {{ row.text }}",
        system_prompt="Extract the topic and urgency of the row. " * 20,
        request_params={"max_tokens": 256, "temperature": 0, "cache_system_prompt": True},
        response_format=Extraction, destination="{{ params.destination }}",
        workspace="{{ params.workspace }}", max_rows_per_chunk=1000, poll_interval=0.2, retries=0,
    )

with DAG("llmb_anthropic_estimate_api", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS,
         catchup=False):
    LLMBatchOperator(
        task_id="extract", provider="anthropic", conn_id=CONN, model="claude-haiku-4-5",
        rows="{{ params.rows }}", key="id", prompt="Row {{ row.id }}: {{ row.text }}",
        system_prompt="Extract the topic and urgency of the row.", request_params={"max_tokens": 256},
        response_format=Extraction, estimate="api", destination="{{ params.destination }}",
        workspace="{{ params.workspace }}", cache="off", poll_interval=0.2, retries=0,
    )
