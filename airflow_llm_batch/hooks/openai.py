"""OpenAI connection -> AsyncOpenAI client -> OpenAI batch backend."""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.sdk.definitions.connection import Connection
from openai import AsyncOpenAI, OpenAI

from airflow_llm_batch.backends.openai import OpenAIBatchBackend
from airflow_llm_batch.exceptions import BadConnectionError
from airflow_llm_batch.hooks.base import LLMBatchHook
from airflow_llm_batch.hooks.extras import batch_options_extra, client_kwargs_extra, number_extra


class OpenAIBatchHook(LLMBatchHook):
    """Connection type ``openai``, compatible with the official provider's connection.

    The type is the official OpenAI provider's: this package reads it but does not register it.

    password = API key; host = base URL (e.g. ``http://127.0.0.1:8787/v1`` for the emulator; empty for
    api.openai.com); extra: ``organization``, ``project``, ``timeout`` (seconds), ``max_retries``, and the
    official provider's ``openai_client_kwargs`` (any argument of ``openai.OpenAI``: ``base_url``,
    ``organization``, ``timeout``, ``default_headers``...; these win). ``auth_type`` other than
    ``api_key`` (the official provider's workload identity) is refused with a BadConnectionError.

    Example: ``OpenAIBatchHook("openai_default").get_backend()``
    """

    provider: ClassVar[str] = "openai"
    conn_name_attr = "conn_id"
    default_conn_name = "openai_default"
    conn_type = "openai"
    hook_name = "OpenAI"

    @staticmethod
    def client_kwargs(conn: Connection) -> dict[str, Any]:
        """One place that turns a connection into client arguments, so sync and async cannot drift.

        The official provider's ``extra.openai_client_kwargs`` (``base_url``, ``api_key``,
        ``organization``, ``timeout``, ``default_headers``...) win over the fields of the same meaning,
        as in the official hook; an argument the client does not take is a BadConnectionError.
        """
        extra = conn.extra_dejson
        auth_type = extra.get("auth_type", "api_key")
        if auth_type != "api_key":
            raise BadConnectionError(f"connection {conn.conn_id!r}: auth_type {auth_type!r} is not supported by "
                                     f"airflow-llm-batch; use auth_type 'api_key' with the key as password")
        kwargs: dict[str, Any] = {name: extra[name] for name in ("organization", "project") if extra.get(name)}
        if extra.get("timeout"):
            kwargs["timeout"] = number_extra(conn.conn_id, "timeout", extra["timeout"], float)
        kwargs["max_retries"] = number_extra(conn.conn_id, "max_retries", extra.get("max_retries", 3), int)
        kwargs.update(client_kwargs_extra(conn.conn_id, "openai_client_kwargs", extra.get("openai_client_kwargs"),
                                          OpenAI))
        base_url = kwargs.pop("base_url", None) or conn.host
        if base_url:
            kwargs["base_url"] = base_url if "://" in base_url else f"https://{base_url}"
        kwargs["api_key"] = kwargs.pop("api_key", None) or conn.password or extra.get("api_key")
        if not kwargs["api_key"]:
            raise BadConnectionError(f"connection {conn.conn_id!r} has no API key: set its password")
        return kwargs

    def backend_from_connection(self, conn: Connection) -> OpenAIBatchBackend:
        return OpenAIBatchBackend(AsyncOpenAI(**self.client_kwargs(conn), http_client=self.http_client),
                                  batch_options=batch_options_extra(conn))

    def get_sync_client(self) -> OpenAI:
        return OpenAI(**self.client_kwargs(self.get_connection(self.conn_id)))

    def probe(self) -> str:
        listed = self.get_sync_client().with_options(max_retries=0).batches.list(limit=1)
        return f"authenticated: the Batch API answered ({len(listed.data)} batch listed)"
