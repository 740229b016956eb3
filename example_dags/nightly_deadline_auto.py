"""A nightly run that must land by 07:00: batch price when there is time, real time when there is not.

``mode="auto"`` decides once per run, after the request cache has answered the rows it already knows:
fewer than 100 rows to send, or a ``deadline`` nearer than ``expected_batch_turnaround``, go in real
time; anything else goes to the Batch API at about half the price. The decision, its reason and the
money at stake are in the task log and in the summary's ``mode``; ``dry_run=True`` shows it without
paying. ``deadline`` is counted from the run's start (the end of its data interval, here
midnight), so ``timedelta(hours=7)`` means "by 07:00 on the day after the data". When batch was picked
and is still open as 07:00 nears, the open rows go real-time (``deadline_margin`` before the time
real-time needs at ``realtime_latency_estimate`` per answer), unless that would go over ``max_cost_usd``.

Runs unchanged on the bundled emulator (``make demo`` sets the ``openai_default`` connection) or on the
real OpenAI API (password = API key, host empty).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_llm_batch.operators import LLMBatchOperator

with DAG(
    dag_id="nightly_deadline_auto",
    schedule="@daily",
    start_date=datetime(2026, 11, 1),
    catchup=False,
    params={"reviews_uri": "", "results_uri": ""},
    tags=["llm-batch", "example", "deadline"],
):
    LLMBatchOperator(
        task_id="label_reviews",
        provider="openai",
        conn_id="openai_default",
        model="gpt-4o-mini",
        mode="auto",
        deadline=timedelta(hours=7),
        expected_batch_turnaround=timedelta(hours=3),
        max_concurrency=16,
        requests_per_minute=3_000,
        # when batch was picked and is still open near 07:00: plan real-time at 1 s per answer and switch
        # with 10 minutes in hand, unless the switch would take the run over max_cost_usd
        realtime_latency_estimate=1.0,
        deadline_margin=timedelta(minutes=10),
        max_cost_usd=5.0,
        rows="{{ params.reviews_uri or 'file:///tmp/llm-batch-demo/reviews/' ~ ds ~ '.jsonl' }}",
        key="review_id",
        prompt="Label the sentiment of this product review as positive, neutral or negative.\n\n{{ row.text }}",
        response_format="json",
        request_params={"temperature": 0, "max_tokens": 20},
        destination="{{ params.results_uri or 'file:///tmp/llm-batch-demo/review-labels/' ~ ds ~ '.jsonl' }}",
        retries=2,
        retry_delay=timedelta(minutes=5),
    )
