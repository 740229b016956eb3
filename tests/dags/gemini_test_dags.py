"""Gemini DAGs the test-suite runs with dag.test() against the emulator; variables come through params."""

from __future__ import annotations

import enum
from datetime import datetime

from airflow.sdk import DAG
from pydantic import BaseModel, Field

from airflow_llm_batch.operators import LLMBatchOperator

CONN = "gemini_emulator"
PARAMS = {"rows": "", "destination": "", "workspace": ""}


class Mood(str, enum.Enum):
    CALM = "calm"
    UPSET = "upset"


class Reading(BaseModel):
    """What the model reads from one row."""

    source: str = Field(description="The row as read, verbatim.")
    mood: Mood
    urgency: int = Field(ge=1, le=5)


with DAG("llmb_gemini_operator", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS, catchup=False):
    LLMBatchOperator(
        task_id="read", provider="gemini", conn_id=CONN, model="gemini-2.5-flash",
        rows="{{ params.rows }}", key="id", prompt="Row {{ row.id }}: {{ row.text }}",
        system_prompt="Read the row and rate its urgency.",
        request_params={"temperature": 0, "max_output_tokens": 4096},
        response_format=Reading, destination="{{ params.destination }}",
        workspace="{{ params.workspace }}", poll_interval=0.2, retries=0,
    )
