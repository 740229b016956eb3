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

# max_cost_usd and the fallback (operators/fallback_budget.py), on an emulator whose batches answer 4 rows/s
# (50 s for all). Priced at $1 / 1M tokens real-time ($0.50 batch) with 1,000 output tokens expected per
# row: a row is ~$0.001 real-time, the run ~$0.10 at batch price. The switch is planned with a 5 s margin
# (deadline_margin) at 40 rows/s (realtime_latency_estimate=2 s, 80 in flight): 5 s for 200 rows.
BUDGET_PRICES = {"openai": {"gpt-4o-mini": {"input": 1.0, "output": 1.0}}}


def priced(max_cost_usd: float, deadline: timedelta) -> LLMBatchOperator:
    return answer(deadline=deadline, deadline_margin=timedelta(seconds=5), realtime_latency_estimate=2.0,
                  prices=BUDGET_PRICES, expected_output_tokens=1_000, max_cost_usd=max_cost_usd)


# $1 covers every row in real time: the switch (about 30 s in) goes ahead
with DAG("llmb_deadline_budget_covers", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS,
         catchup=False):
    priced(1.0, timedelta(seconds=40))

# $0.12 covers the batch (~$0.10) but not the 120+ rows still open at the switch (about 10 s in) in real time
with DAG("llmb_deadline_budget_short", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS,
         catchup=False):
    priced(0.12, timedelta(seconds=20))
