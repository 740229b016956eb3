"""Azure OpenAI connection -> AsyncAzureOpenAI client -> Azure batch backend."""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.sdk.definitions.connection import Connection
from openai import AsyncAzureOpenAI

from airflow_llm_batch.backends.azure_openai import AzureOpenAIBatchBackend
from airflow_llm_batch.exceptions import BadConnectionError
from airflow_llm_batch.hooks.base import LLMBatchHook

DEFAULT_API_VERSION = "2024-10-21"


class AzureOpenAIBatchHook(LLMBatchHook):
    """Connection type ``azure_openai``: password = API key, host = the resource endpoint
    (``https://NAME.openai.azure.com``); extra ``api_version`` (default 2024-10-21), ``timeout``,
    ``max_retries``.

    Example: ``AzureOpenAIBatchHook("azure_openai_default").get_backend()``
    """

    provider: ClassVar[str] = "azure_openai"
    conn_name_attr = "azure_openai_conn_id"
    default_conn_name = "azure_openai_default"
    conn_type = "azure_openai"
    hook_name = "Azure OpenAI (batch)"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["schema", "port", "login"],
            "relabeling": {"password": "API Key", "host": "Azure endpoint"},
            "placeholders": {"host": "https://NAME.openai.azure.com", "extra": '{"api_version": "2024-10-21"}'},
        }

    @staticmethod
    def client_kwargs(conn: Connection) -> dict[str, Any]:
        extra = conn.extra_dejson
        if not conn.host:
            raise BadConnectionError(f"connection {conn.conn_id!r} has no host: set it to the Azure OpenAI endpoint")
        if not (conn.password or extra.get("api_key")):
            raise BadConnectionError(f"connection {conn.conn_id!r} has no API key: set its password")
        kwargs: dict[str, Any] = {
            "azure_endpoint": conn.host if "://" in conn.host else f"https://{conn.host}",
            "api_key": conn.password or extra.get("api_key"),
            "api_version": extra.get("api_version", DEFAULT_API_VERSION),
            "max_retries": int(extra.get("max_retries", 3)),
        }
        if extra.get("timeout"):
            kwargs["timeout"] = float(extra["timeout"])
        return kwargs

    def backend_from_connection(self, conn: Connection) -> AzureOpenAIBatchBackend:
        return AzureOpenAIBatchBackend(AsyncAzureOpenAI(**self.client_kwargs(conn), http_client=self.http_client))
