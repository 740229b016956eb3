"""DAGs for "trust at the edges": secrets never stored, and errors no retry can fix fail at once.

Every task has ``retries=2`` and no retry delay: a task that ends failed on try 1 was failed for good.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG

from airflow_llm_batch.operators import LLMBatchOperator, LLMBatchResultsOperator, SubmitLLMBatchOperator
from airflow_llm_batch.sensors.batch import LLMBatchSensor

#: a connection whose password is set by the test to a unique string (see tests/operators/test_trust.py)
SECRET_CONN = "llm_secret_conn"
PARAMS = {"rows": "", "destination": "", "workspace": ""}
RETRIES = {"retries": 2, "retry_delay": timedelta(0)}
START = datetime(2026, 1, 1)

with DAG("trust_secret_batch", schedule=None, start_date=START, params=PARAMS, catchup=False):
    LLMBatchOperator(
        task_id="batch", conn_id=SECRET_CONN, model="gpt-4o-mini", rows="{{ params.rows }}", key="id",
        prompt="{{ row.text }}", destination="{{ params.destination }}", workspace="{{ params.workspace }}",
        provider_options={"max_retries": 2}, poll_interval=0.2, retries=0,
    )

with DAG("trust_secret_split", schedule=None, start_date=START, params=PARAMS, catchup=False):
    submit = SubmitLLMBatchOperator(
        task_id="submit", conn_id=SECRET_CONN, model="gpt-4o-mini", rows="{{ params.rows }}", key="id",
        prompt="{{ row.text }}", workspace="{{ params.workspace }}", provider_options={"max_retries": 2},
    )
    wait = LLMBatchSensor(task_id="wait", handle=submit.output, poll_interval=0.2)
    land = LLMBatchResultsOperator(task_id="land", handle=submit.output, destination="{{ params.destination }}")
    submit >> wait >> land


def record_failure(context: Any) -> None:
    """on_failure_callback: keep the task's error next to its destination, for the test to read."""
    error = context.get("exception")
    destination = str(context["params"]["destination"]).removeprefix("file://")
    Path(f"{destination}.error").write_text(f"{type(error).__name__}: {error}")


def _failing(dag_id: str, **overrides: object) -> None:
    kwargs: dict[str, object] = dict(
        task_id="batch", conn_id="llm_emulator", model="gpt-4o-mini", rows="{{ params.rows }}", key="id",
        prompt="{{ row.text }}", destination="{{ params.destination }}", workspace="{{ params.workspace }}",
        poll_interval=0.2, on_failure_callback=record_failure, **RETRIES,
    )
    kwargs.update(overrides)
    with DAG(dag_id, schedule=None, start_date=START, params=PARAMS, catchup=False):
        LLMBatchOperator(**kwargs)  # type: ignore[arg-type]


_failing("trust_unknown_provider", provider="openia")
_failing("trust_keyless_connection", conn_id="llm_keyless")
_failing("trust_template_syntax", prompt="{{ row.text ")
_failing("trust_min_success_rate", min_success_rate=0.9, max_attempts=1)
_failing("trust_workspace_is_a_file")
