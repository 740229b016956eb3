"""OpenAI connection -> AsyncOpenAI client -> OpenAI batch backend."""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.sdk.definitions.connection import Connection
from openai import AsyncOpenAI, OpenAI

from airflow_llm_batch.backends.openai import OpenAIBatchBackend
from airflow_llm_batch.exceptions import BadConnectionError
from airflow_llm_batch.hooks.base import LLMBatchHook
from airflow_llm_batch.hooks.extras import number_extra


class OpenAIBatchHook(LLMBatchHook):
    """Connection type ``openai``, compatible with the official provider's connection.

    The type is the official OpenAI provider's: this package reads it but does not register it.

    password = API key; host = base URL (e.g. ``http://127.0.0.1:8787/v1`` for the emulator; empty for
    api.openai.com); extra: ``organization``, ``project``, ``timeout`` (seconds), ``max_retries``.

    Example: ``OpenAIBatchHook("openai_default").get_backend()``
    """

    provider: ClassVar[str] = "openai"
    conn_name_attr = "conn_id"
    default_conn_name = "openai_default"
    conn_type = "openai"
    hook_name = "OpenAI"

    @staticmethod
    def client_kwargs(conn: Connection) -> dict[str, Any]:
        """One place that turns a connection into client arguments, so sync and async cannot drift."""
        extra = conn.extra_dejson
        kwargs: dict[str, Any] = {"api_key": conn.password or extra.get("api_key")}
        if conn.host:
            kwargs["base_url"] = conn.host if "://" in conn.host else f"https://{conn.host}"
        for name in ("organization", "project"):
            if extra.get(name):
                kwargs[name] = extra[name]
        if extra.get("timeout"):
            kwargs["timeout"] = number_extra(conn.conn_id, "timeout", extra["timeout"], float)
        kwargs["max_retries"] = number_extra(conn.conn_id, "max_retries", extra.get("max_retries", 3), int)
        if not kwargs["api_key"]:
            raise BadConnectionError(f"connection {conn.conn_id!r} has no API key: set its password")
        return kwargs

    def backend_from_connection(self, conn: Connection) -> OpenAIBatchBackend:
        return OpenAIBatchBackend(AsyncOpenAI(**self.client_kwargs(conn), http_client=self.http_client))

    def get_sync_client(self) -> OpenAI:
        return OpenAI(**self.client_kwargs(self.get_connection(self.conn_id)))

    def probe(self) -> str:
        listed = self.get_sync_client().with_options(max_retries=0).batches.list(limit=1)
        return f"authenticated: the Batch API answered ({len(listed.data)} batch listed)"
