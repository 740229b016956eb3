"""Product descriptions for a catalog that lives in BigQuery, written by Gemini on Vertex AI at batch
price, landed in a BigQuery table with typed columns (headline, description, bullet points...).

Data stays in Google Cloud end to end: the products are read from BigQuery, each chunk of rendered
requests is staged as a BigQuery table that the batch prediction job reads, the job writes its answers
to another BigQuery table, and the results (joined to each product by ``sku``) are landed with a load
job plus one MERGE, so a retried or cleared run replaces its own rows instead of duplicating them.
Only products changed since the last run are sent: unchanged ones are answered from the request cache.

Connection ``google_cloud_default`` (type ``google_cloud_platform``): credentials from its key / the
Google provider, or Application Default Credentials; extras::

    {"project": "my-project", "vertex_location": "europe-west4",
     "vertex_staging_uri": "bq://my-project.llm_batch_staging",
     "vertex_output_uri": "bq://my-project.llm_batch_staging"}

(``gs://bucket/prefix`` works for either: JSONL files instead of tables.) On the emulators, add
``vertex_endpoint``, ``storage_endpoint`` and ``bigquery_endpoint``.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from enum import Enum

from airflow.sdk import DAG
from pydantic import BaseModel, Field

from airflow_llm_batch.operators import LLMBatchOperator
from airflow_llm_batch.sources.bigquery import bigquery_query_uri


class Tone(str, Enum):
    playful = "playful"
    premium = "premium"
    practical = "practical"


class ProductCopy(BaseModel):
    """The copy written for one product."""

    headline: str = Field(description="A headline of at most 8 words.", max_length=80)
    description: str = Field(description="Two or three sentences for the product page.", max_length=600)
    bullet_points: list[str] = Field(description="Key facts, one per bullet.", max_length=4)
    tone: Tone


#: the catalog's active products, in a stable order: a retry compares the rows it reads with the ones
#: already submitted, in order
ACTIVE_PRODUCTS = bigquery_query_uri(
    "SELECT sku, name, category, brand, material, price_eur, attributes FROM `{{ params.catalog_table }}` "
    "WHERE active ORDER BY sku"
)

with DAG(
    dag_id="catalog_descriptions_vertex",
    schedule="@daily",
    start_date=datetime(2026, 11, 1),
    catchup=False,
    params={
        "catalog_table": "my-project.catalog.products",
        "copy_table": "my-project.catalog.product_copy",
    },
    tags=["llm-batch", "example", "bigquery", "vertex"],
):
    LLMBatchOperator(
        task_id="write_product_copy",
        provider="vertex",
        conn_id="google_cloud_default",
        model="gemini-2.5-flash",
        rows=ACTIVE_PRODUCTS,
        key="sku",
        system_prompt="You write accurate, friendly product copy for an online home-goods store. Never invent "
                      "facts that are not in the product data.",
        prompt="Product {{ row.sku }}: {{ row.name }} by {{ row.brand }}\nCategory: {{ row.category }}\n"
               "Material: {{ row.material }}\nPrice: {{ row.price_eur }} EUR\nAttributes: {{ row.attributes }}",
        response_format=ProductCopy,
        request_params={"temperature": 0.4, "max_output_tokens": 800},
        destination="bq://{{ params.copy_table }}?mode=merge",
        max_rows_per_chunk=50_000,
        poll_interval=float(os.environ.get("LLM_BATCH_DEMO_POLL_INTERVAL", "120")),
        timeout=timedelta(hours=26),
        min_success_rate=0.98,
        retries=2,
    )
