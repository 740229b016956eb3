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


#: where the documentation, changelog and issue tracker live (also in pyproject's [project.urls])
DOCUMENTATION_URL = "https://github.com/airflow-llm-batch/airflow-llm-batch#readme"

_NULLABLE_STRING = {"type": ["string", "null"]}
_TIMEOUT_FIELD = {"label": "Timeout (seconds)", "schema": {"type": ["number", "null"], "minimum": 0},
                  "description": "Seconds per HTTP call; empty for the SDK's default."}

#: Connection types this package owns. ``openai``, ``anthropic`` and ``google_cloud_platform`` are read as
#: their official providers define them and are never registered here (the providers manager keeps the
#: first registration, so registering them would take them away from the official providers).
CONNECTION_TYPES: list[dict[str, Any]] = [
    {
        "hook-class-name": "airflow_llm_batch.hooks.azure_openai.AzureOpenAIBatchHook",
        "hook-name": "Azure OpenAI Batch (airflow-llm-batch)",
        "connection-type": "llm_batch_azure_openai",
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port", "login"],
            "relabeling": {"password": "API Key", "host": "Azure OpenAI Endpoint"},
            "placeholders": {"host": "https://NAME.openai.azure.com", "password": "the resource's API key"},
        },
        "conn-fields": {
            "api_version": {"label": "API Version", "schema": {**_NULLABLE_STRING, "default": "2024-10-21"},
                            "description": "Azure OpenAI data-plane API version with the Batch API."},
            "timeout": _TIMEOUT_FIELD,
            "max_retries": {"label": "Max Retries", "schema": {"type": ["integer", "null"], "minimum": 0,
                                                                "default": 3},
                            "description": "Retries of one HTTP call by the SDK on transient errors."},
        },
    },
    {
        "hook-class-name": "airflow_llm_batch.hooks.gemini.GeminiBatchHook",
        "hook-name": "Gemini Developer API Batch (airflow-llm-batch)",
        "connection-type": "llm_batch_gemini",
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port", "login"],
            "relabeling": {"password": "API Key", "host": "Base URL"},
            "placeholders": {"host": "https://generativelanguage.googleapis.com (leave empty for the default)",
                             "password": "a Gemini API key (Google AI Studio)"},
        },
        "conn-fields": {
            "api_version": {"label": "API Version", "schema": _NULLABLE_STRING,
                            "description": "Gemini API version; empty for google-genai's default (v1beta)."},
            "timeout": _TIMEOUT_FIELD,
            "inline_max_bytes": {"label": "Inline Max Bytes", "schema": {"type": ["integer", "null"], "minimum": 0},
                                 "description": "Chunks whose create body is larger are uploaded as files; "
                                                "0 always uploads; empty for the default (20 MB)."},
        },
    },
]


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-llm-batch",
        "name": "LLM Batch",
        "description": "Run prompts over millions of rows through provider batch APIs (OpenAI, Anthropic, "
        "Gemini, Vertex) at batch price, with deferrable waiting and results landed where you need them.",
        "versions": [__version__],
        "documentation-url": DOCUMENTATION_URL,
        "integrations": [
            {"integration-name": "LLM Batch", "external-doc-url": DOCUMENTATION_URL, "tags": ["ai"]},
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
        # not "llm_batch": that name belongs to apache-airflow-providers-common-ai's decorator
        "task-decorators": [
            {"name": "llm_batch_job", "class-name": "airflow_llm_batch.decorators.llm_batch.llm_batch_job_task"},
        ],
        "config": CONFIG,
        "connection-types": CONNECTION_TYPES,
    }
