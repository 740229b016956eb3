"""``deadline=`` in batch mode: DAGs tests/operators/test_deadline_fallback.py runs with dag.test() against
an emulator whose batches answer 1 row per second. Rows, destination, workspace and connection come
through params; the connection (``dl_openai``) is defined by the test module.

The fallback is planned at 40 rows/s (``max_concurrency=80`` / 2 s) with a 5-minute margin: with 200 rows
open, the near deadline (5 min 50 s from the run's start) switches about 45 s after the start, while the
batch has answered only part of its rows; the far one (6 h) never does."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG

from airflow_llm_batch.operators import LLMBatchOperator

PARAMS: dict[str, Any] = {"rows": "", "destination": "", "workspace": "", "conn_id": "dl_openai"}
NEAR = timedelta(minutes=5, seconds=50)


def answer(**kwargs: Any) -> LLMBatchOperator:
    return LLMBatchOperator(
        task_id="answer", provider="openai", conn_id="{{ params.conn_id }}", model="gpt-4o-mini",
        rows="{{ params.rows }}", key="id", prompt="{{ row.text }}", workspace="{{ params.workspace }}",
        destination="{{ params.destination }}", poll_interval=0.5, max_concurrency=80, **{"retries": 0, **kwargs})


with DAG("llmb_deadline_near", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS, catchup=False):
    answer(deadline=NEAR)

with DAG("llmb_deadline_near_worker", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS,
         catchup=False):
    answer(deadline=NEAR, deferrable=False)

with DAG("llmb_deadline_far", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS, catchup=False):
    answer(deadline=timedelta(hours=6))

with DAG("llmb_deadline_near_retry", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS,
         catchup=False):
    answer(deadline=NEAR, retries=1, retry_delay=timedelta(0))
