"""What Airflow's providers manager reads about this package (entry point apache_airflow_provider)."""

from __future__ import annotations

from typing import Any

from airflow_llm_batch import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-llm-batch",
        "name": "LLM Batch",
        "description": "Run prompts over millions of rows through provider batch APIs (OpenAI, Anthropic, "
        "Gemini, Vertex) at batch price, with deferrable waiting and results landed where you need them.",
        "versions": [__version__],
        "integrations": [
            {"integration-name": "LLM Batch", "external-doc-url": "https://pypi.org/project/airflow-llm-batch/",
             "tags": ["ai"]},
        ],
        "operators": [
            {"integration-name": "LLM Batch", "python-modules": ["airflow_llm_batch.operators.batch",
                                                                  "airflow_llm_batch.operators.split"]},
        ],
        "sensors": [{"integration-name": "LLM Batch", "python-modules": ["airflow_llm_batch.sensors.batch"]}],
        "triggers": [{"integration-name": "LLM Batch", "python-modules": ["airflow_llm_batch.triggers.batch"]}],
        "hooks": [{"integration-name": "LLM Batch", "python-modules": [
            "airflow_llm_batch.hooks.openai", "airflow_llm_batch.hooks.azure_openai",
            "airflow_llm_batch.hooks.anthropic", "airflow_llm_batch.hooks.gemini",
            "airflow_llm_batch.hooks.vertex"]}],
        "task-decorators": [
            {"name": "llm_batch", "class-name": "airflow_llm_batch.decorators.llm_batch.llm_batch_task"},
        ],
        "connection-types": [
            {"hook-class-name": "airflow_llm_batch.hooks.openai.OpenAIBatchHook", "connection-type": "openai"},
            {"hook-class-name": "airflow_llm_batch.hooks.azure_openai.AzureOpenAIBatchHook",
             "connection-type": "azure_openai"},
            {"hook-class-name": "airflow_llm_batch.hooks.anthropic.AnthropicBatchHook",
             "connection-type": "anthropic"},
            {"hook-class-name": "airflow_llm_batch.hooks.gemini.GeminiBatchHook", "connection-type": "gemini"},
        ],
    }
