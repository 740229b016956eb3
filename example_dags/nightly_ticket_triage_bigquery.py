"""Nightly ticket triage, warehouse to warehouse: yesterday's tickets from a BigQuery table, classified at
batch price, landed in a BigQuery table with typed columns (category, priority, summary...).

The landing is a load job plus one MERGE keyed on ticket_id and the run: a retried or cleared run
replaces its own rows, never duplicates them, and never pays for its batches twice.

Runs unchanged on the emulators (`python -m airflow_llm_batch.demo_bigquery`) or for real:
`openai_default` holds the OpenAI key; `google_cloud_default` (a google_cloud_platform connection;
extra `project`) or Application Default Credentials reach BigQuery. Set the two table params.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from enum import Enum

from airflow.sdk import DAG
from pydantic import BaseModel, Field

from airflow_llm_batch.operators import LLMBatchOperator
from airflow_llm_batch.sources.bigquery import bigquery_query_uri


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


#: yesterday's tickets (relative to the run's logical date), in a stable order: a retry compares the
#: rows it reads with the ones already submitted, in order
YESTERDAYS_TICKETS = bigquery_query_uri(
    "SELECT ticket_id, subject, tier, body FROM `{{ params.tickets_table }}` "
    "WHERE created_date = DATE '{{ macros.ds_add(ds, -1) }}' ORDER BY ticket_id"
)

with DAG(
    dag_id="nightly_ticket_triage_bigquery",
    schedule="@daily",
    start_date=datetime(2026, 11, 1),
    catchup=False,
    params={
        "tickets_table": "my-project.support.tickets",
        "triage_table": "my-project.support.ticket_triage",
    },
    tags=["llm-batch", "example", "bigquery"],
):
    LLMBatchOperator(
        task_id="triage_tickets",
        provider="openai",
        conn_id="openai_default",
        model="gpt-4o-mini",
        rows=YESTERDAYS_TICKETS,
        key="ticket_id",
        system_prompt="You triage customer support tickets for an online shop.",
        prompt="Subject: {{ row.subject }}\nCustomer tier: {{ row.tier }}\n\n{{ row.body }}",
        response_format=Triage,
        request_params={"temperature": 0, "max_tokens": 300},
        destination="bq://{{ params.triage_table }}?mode=merge",
        poll_interval=float(os.environ.get("LLM_BATCH_DEMO_POLL_INTERVAL", "60")),  # demo: 1 s
        timeout=timedelta(hours=26),
        min_success_rate=0.95,
        retries=2,
        retry_delay=timedelta(minutes=5),
    )
