"""What Airflow's providers manager reads about this package (entry point apache_airflow_provider)."""

from __future__ import annotations

from typing import Any

from airflow_llm_batch import __version__

#: the ``[llm_batch]`` section: ``airflow config list --section llm_batch`` shows it with its defaults
CONFIG: dict[str, Any] = {
    "llm_batch": {
        "description": "Options of the airflow-llm-batch provider.",
        "options": {
            "workspace": {
                "description": "Object storage URI where tasks keep their run state (inputs, intents, batch "
                "ids, downloaded results) and the request cache, unless a task sets ``workspace=``. "
                "Use file:// for one machine, gs:// or s3:// when workers are many. Each Airflow "
                "install gets its own by default.",
                "version_added": "0.1.0",
                "type": "string",
                "example": "gs://my-bucket/llm_batch_workspace",
                "default": "file://{AIRFLOW_HOME}/llm_batch_workspace",
            },
            "prices_file": {
                "description": "A JSON price file merged over the bundled price table, so prices can be kept "
                "current without a new release: same format as the bundled table ({\"taken_on\": "
                "\"YYYY-MM-DD\", \"providers\": {provider: {model: {\"input\": ..., \"output\": ...}}}}, "
                "USD per 1M tokens). Local path or object storage URI. `airflow-llm-batch prices` shows the "
                "effective table with each price's date and source.",
                "version_added": "0.1.0",
                "type": "string",
                "example": "s3://my-bucket/llm_prices.json",
                "default": "",
            },
        },
    },
}


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
        "config": CONFIG,
        "connection-types": [
            {"hook-class-name": "airflow_llm_batch.hooks.openai.OpenAIBatchHook", "connection-type": "openai"},
            {"hook-class-name": "airflow_llm_batch.hooks.azure_openai.AzureOpenAIBatchHook",
             "connection-type": "azure_openai"},
            {"hook-class-name": "airflow_llm_batch.hooks.anthropic.AnthropicBatchHook",
             "connection-type": "anthropic"},
            {"hook-class-name": "airflow_llm_batch.hooks.gemini.GeminiBatchHook", "connection-type": "gemini"},
        ],
    }
