"""Nightly support-ticket triage: classify yesterday's tickets into category, priority and summary.

Runs unchanged on the bundled emulator (`make demo`) or on the real OpenAI Batch API: point the
`openai_default` connection at api.openai.com (password = API key, host empty) and set the
`tickets_uri` / `results_uri` params to your storage (file://, gs://, s3://...).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from enum import Enum

from airflow.sdk import DAG
from pydantic import BaseModel, Field

from airflow_llm_batch.operators import LLMBatchOperator


class Category(str, Enum):
    billing = "billing"
    bug = "bug"
    account = "account"
    feature_request = "feature_request"
    other = "other"


class Priority(str, Enum):
    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"


class Triage(BaseModel):
    category: Category
    priority: Priority
    summary: str = Field(description="One sentence for the on-call agent.", max_length=300)


with DAG(
    dag_id="nightly_ticket_triage",
    schedule="@daily",
    start_date=datetime(2026, 11, 1),
    catchup=False,
    # empty params mean "the day's default files" (params are not templates themselves)
    params={"tickets_uri": "", "results_uri": ""},
    tags=["llm-batch", "example"],
):
    LLMBatchOperator(
        task_id="triage_tickets",
        provider="openai",
        conn_id="openai_default",
        model="gpt-4o-mini",
        rows="{{ params.tickets_uri or 'file:///tmp/llm-batch-demo/tickets/' ~ ds ~ '.jsonl' }}",
        key="ticket_id",
        system_prompt="You triage customer support tickets for an online shop.",
        prompt="Subject: {{ row.subject }}\nCustomer tier: {{ row.tier }}\n\n{{ row.body }}",
        response_format=Triage,
        request_params={"temperature": 0, "max_tokens": 300},
        destination="{{ params.results_uri or 'file:///tmp/llm-batch-demo/triage/' ~ ds ~ '.jsonl' }}",
        # batches take minutes to hours: poll every minute (the demo sets 1 s for the emulator)
        poll_interval=float(os.environ.get("LLM_BATCH_DEMO_POLL_INTERVAL", "60")),
        timeout=timedelta(hours=26),
        min_success_rate=0.95,
        retries=2,
        retry_delay=timedelta(minutes=5),
    )
