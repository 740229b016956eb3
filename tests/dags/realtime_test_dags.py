"""Real-time and ``mode="auto"`` DAGs the test-suite runs with dag.test() against the bundled emulator.
Rows, destination, workspace and connection come through params; the connections (``rt_*``) are
defined by tests/operators/test_realtime_mode.py."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG

from airflow_llm_batch.operators import LLMBatchOperator

PARAMS: dict[str, Any] = {"rows": "", "destination": "", "workspace": "", "conn_id": "rt_openai", "mode": "realtime"}

#: provider -> model the emulator answers for it
MODELS = {"openai": "gpt-4o-mini", "azure_openai": "my-deployment", "anthropic": "claude-haiku-4-5",
          "gemini": "gemini-2.5-flash", "vertex": "gemini-2.5-flash"}


def answer(task_id: str = "answer", provider: str = "openai", **kwargs: Any) -> LLMBatchOperator:
    params = {"max_tokens": 64} if provider == "anthropic" else {}
    settings: dict[str, Any] = {"mode": "{{ params.mode }}", "destination": "{{ params.destination }}",
                                "poll_interval": 0.2, "retries": 0, **kwargs}
    return LLMBatchOperator(
        task_id=task_id, provider=provider, conn_id="{{ params.conn_id }}", model=MODELS[provider],
        rows="{{ params.rows }}", key="id", prompt="{{ row.text }}", request_params=params,
        workspace="{{ params.workspace }}", **settings)


for _provider in MODELS:
    with DAG(f"llmb_rt_{_provider}", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS, catchup=False):
        answer(provider=_provider, max_concurrency=4)

with DAG("llmb_rt_capped", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS, catchup=False):
    answer(max_concurrency=12, max_rows_per_chunk=700)

with DAG("llmb_rt_resume", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS, catchup=False):
    answer(max_concurrency=1, retries=1, retry_delay=timedelta(0))

with DAG("llmb_rt_auto", schedule=None, start_date=datetime(2026, 1, 1), params={**PARAMS, "mode": "auto"},
         catchup=False):
    answer(max_concurrency=8)

with DAG("llmb_rt_auto_dry", schedule=None, start_date=datetime(2026, 1, 1), params={**PARAMS, "mode": "auto"},
         catchup=False):
    answer(dry_run=True)

with DAG("llmb_rt_decorated", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS, catchup=False):
    from airflow.sdk import task

    @task.llm_batch_job(conn_id="rt_openai", model="gpt-4o-mini", key="id", prompt="Say {{ row.text }}",
                        workspace="{{ params.workspace }}", mode="realtime", max_concurrency=2, retries=0)
    def computed_rows() -> list[dict[str, str]]:
        return [{"id": f"d{i}", "text": f"decorated {i}"} for i in range(5)]

    computed_rows()
