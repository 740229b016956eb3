"""Azure OpenAI connection -> AsyncAzureOpenAI client -> Azure batch backend."""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.sdk.definitions.connection import Connection
from openai import AsyncAzureOpenAI, AzureOpenAI

from airflow_llm_batch.backends.azure_openai import AzureOpenAIBatchBackend
from airflow_llm_batch.exceptions import BadConnectionError
from airflow_llm_batch.hooks.base import LLMBatchHook
from airflow_llm_batch.hooks.extras import batch_options_extra, client_kwargs_extra, number_extra

DEFAULT_API_VERSION = "2024-10-21"


class AzureOpenAIBatchHook(LLMBatchHook):
    """Connection type ``llm_batch_azure_openai`` (this package's own; no official provider has one for
    Azure OpenAI): password = API key, host = the resource endpoint
    (``https://NAME.openai.azure.com``); extra ``api_version`` (default 2024-10-21), ``timeout``,
    ``max_retries``, and ``azure_client_kwargs`` (any argument of ``openai.AzureOpenAI``:
    ``azure_deployment``, ``default_headers``, ``organization``...; these win; a name the client does
    not take is a BadConnectionError).

    Example: ``AzureOpenAIBatchHook("azure_openai_default").get_backend()``
    """

    provider: ClassVar[str] = "azure_openai"
    conn_name_attr = "conn_id"
    default_conn_name = "azure_openai_default"
    conn_type = "llm_batch_azure_openai"
    hook_name = "Azure OpenAI (batch)"

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
            "max_retries": number_extra(conn.conn_id, "max_retries", extra.get("max_retries", 3), int),
        }
        if extra.get("timeout"):
            kwargs["timeout"] = number_extra(conn.conn_id, "timeout", extra["timeout"], float)
        kwargs.update(client_kwargs_extra(conn.conn_id, "azure_client_kwargs", extra.get("azure_client_kwargs"),
                                          AzureOpenAI))
        return kwargs

    def backend_from_connection(self, conn: Connection) -> AzureOpenAIBatchBackend:
        return AzureOpenAIBatchBackend(AsyncAzureOpenAI(**self.client_kwargs(conn), http_client=self.http_client),
                                       batch_options=batch_options_extra(conn))

    def probe(self) -> str:
        kwargs = {**self.client_kwargs(self.get_connection(self.conn_id)), "max_retries": 0}
        listed = AzureOpenAI(**kwargs).batches.list(limit=1)
        return f"authenticated: the Batch API answered ({len(listed.data)} batch listed)"
