"""Summaries on a self-hosted model: vLLM, Ollama, TGI, LM Studio or any OpenAI-compatible server.

These servers have no batch API, so ``mode="auto"`` finds that out (the connection extra
``batch_api``, or one free ``GET /v1/batches`` probe answering 404) and sends every row in real time
from the worker: at most ``max_concurrency`` requests in flight, ``Retry-After`` honoured, answers
appended to the workspace as they arrive so a retried task sends only the rows still unanswered.
Self-hosted models cost nothing unless you price them, so the summary reports $0.

Connection (the official ``openai`` type; the key is optional)::

    export AIRFLOW_CONN_VLLM_LOCAL='{"conn_type": "openai", "host": "http://127.0.0.1:8000/v1",
                                     "extra": {"batch_api": false}}'

Ollama serves the same API at ``http://127.0.0.1:11434/v1``. On the bundled emulator without batch
routes: ``airflow-llm-batch emulator --no-batch-api`` and the connection's host at its ``/v1`` URL.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_llm_batch.operators import LLMBatchOperator

with DAG(
    dag_id="self_hosted_summaries",
    schedule="@daily",
    start_date=datetime(2026, 11, 1),
    catchup=False,
    params={"articles_uri": "", "results_uri": "", "model": "llama-3.1-8b-instruct"},
    tags=["llm-batch", "example", "self-hosted"],
):
    LLMBatchOperator(
        task_id="summarise_articles",
        provider="openai_compatible",
        conn_id="vllm_local",
        model="{{ params.model }}",
        mode="auto",
        max_concurrency=32,  # what the GPU server takes at once; 429s beyond it are retried after Retry-After
        rows="{{ params.articles_uri or 'file:///tmp/llm-batch-demo/articles/' ~ ds ~ '.jsonl' }}",
        key="article_id",
        system_prompt="Summarise the article in two sentences for a news digest.",
        prompt="{{ row.title }}\n\n{{ row.body }}",
        request_params={"temperature": 0.2, "max_tokens": 160},
        destination="{{ params.results_uri or 'file:///tmp/llm-batch-demo/summaries/' ~ ds ~ '.jsonl' }}",
        retries=2,
        retry_delay=timedelta(minutes=1),
    )
