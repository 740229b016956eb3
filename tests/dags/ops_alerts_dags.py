"""DAGs for the run-time alerts: a batch open longer than warn_after (deferred and on the worker), and
a min_success_rate that is lost before every batch ended. They use ``llm_slow``: an emulator whose
batches do not progress (set up by tests/operators/test_alerts.py)."""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any

from airflow.sdk import DAG

from airflow_llm_batch.operators import LLMBatchOperator

PARAMS = {"rows": "", "destination": "", "workspace": ""}


def record_stuck(info: dict[str, Any]) -> None:
    """The user's callback: append what it was given to the file the test reads."""
    with open(os.environ["LLMB_STUCK_LOG"], "a") as fh:
        fh.write(json.dumps(info) + "\n")


for dag_id, deferrable in (("ops_stuck_deferred", True), ("ops_stuck_worker", False)):
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS, catchup=False):
        LLMBatchOperator(
            task_id="batch", conn_id="llm_slow", model="gpt-4o-mini", rows="{{ params.rows }}", key="id",
            prompt="{{ row.text }}", destination="{{ params.destination }}", workspace="{{ params.workspace }}",
            poll_interval=0.2, retries=0, deferrable=deferrable, warn_after=0, on_stuck_batch=record_stuck,
            timeout=3, cancel_on_timeout=True,
        )

with DAG("ops_fail_fast", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS, catchup=False):
    LLMBatchOperator(
        task_id="batch", conn_id="llm_slow", model="gpt-4o-mini", rows="{{ params.rows }}", key="id",
        prompt="{{ row.text }}", destination="{{ params.destination }}", workspace="{{ params.workspace }}",
        max_rows_per_chunk=20, poll_interval=0.2, retries=0, min_success_rate=0.9, timeout=60,
    )
