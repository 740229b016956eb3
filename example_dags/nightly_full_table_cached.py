"""Nightly classification of a WHOLE table that mostly does not change: pay only for what changed.

Every night the task reads the full review table and asks for a sentiment label per review. The
request cache (on by default) answers every review whose request (model, prompt, parameters,
schema) was answered before, so the second night over 10,000 reviews with 500 edited sends 500
requests; the summary's `cost.cached_saving_usd` shows the money not spent. `max_cost_usd` stops
the run before anything is paid if, say, someone changed the prompt (every fingerprint changes and
the estimate jumps), and `cache_ttl` re-asks answers older than 30 days. The Parquet destination
needs pyarrow (`pip install "airflow-llm-batch[parquet]"`).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Literal

from airflow.sdk import DAG
from pydantic import BaseModel, Field

from airflow_llm_batch.operators import LLMBatchOperator


class Sentiment(BaseModel):
    label: Literal["positive", "neutral", "negative"]
    confidence: int = Field(ge=1, le=5, description="1 = unsure, 5 = certain")


with DAG(
    dag_id="nightly_full_table_cached",
    schedule="@daily",
    start_date=datetime(2026, 11, 1),
    catchup=False,
    params={"reviews_uri": "", "labels_uri": ""},
    tags=["llm-batch", "example", "cache"],
):
    LLMBatchOperator(
        task_id="label_reviews",
        provider="openai",
        conn_id="openai_default",
        model="gpt-4o-mini",
        rows="{{ params.reviews_uri or 'file:///tmp/llm-batch-demo/reviews/all.jsonl' }}",
        key="review_id",
        system_prompt="Label the sentiment of a product review.",
        prompt="{{ row.title }}\n\n{{ row.text }}",
        response_format=Sentiment,
        request_params={"temperature": 0, "max_tokens": 50},
        destination="{{ params.labels_uri or 'file:///tmp/llm-batch-demo/labels/' ~ ds ~ '.parquet' }}",
        cache="read_write",
        cache_ttl=timedelta(days=30),
        max_cost_usd=25.0,
        expected_output_tokens=20,
        poll_interval=float(os.environ.get("LLM_BATCH_DEMO_POLL_INTERVAL", "60")),
        retries=2,
    )
