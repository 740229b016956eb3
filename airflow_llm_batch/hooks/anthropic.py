"""Anthropic connection -> AsyncAnthropic client -> Anthropic Message Batches backend."""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.sdk.definitions.connection import Connection
from anthropic import Anthropic, AsyncAnthropic, IdentityTokenFile, WorkloadIdentityCredentials

from airflow_llm_batch.backends.anthropic import AnthropicBatchBackend
from airflow_llm_batch.exceptions import BadConnectionError
from airflow_llm_batch.hooks.base import LLMBatchHook
from airflow_llm_batch.hooks.extras import client_kwargs_extra, number_extra

#: platforms of the official provider's connection that serve the Message Batches API through AsyncAnthropic
BATCH_PLATFORMS = frozenset({"anthropic"})
_WIF_REQUIRED = ("identity_token_file", "federation_rule_id", "organization_id")
_WIF_OPTIONAL = ("service_account_id", "workspace_id", "scope")


class AnthropicBatchHook(LLMBatchHook):
    """Connection type ``anthropic``, the same connection the official Airflow Anthropic provider reads
    (and registers: this package does not).

    password = API key; host = base URL (e.g. ``http://127.0.0.1:8787`` for the emulator, no ``/v1``;
    empty for api.anthropic.com). extra, as in the official provider: ``platform`` (only
    ``"anthropic"`` serves Message Batches here), ``anthropic_client_kwargs`` (passed to the client:
    ``timeout``, ``max_retries``, ``default_headers``, ``base_url``...; a name ``anthropic.Anthropic``
    does not take is a BadConnectionError), ``workload_identity``
    (keyless auth: ``identity_token_file``, ``federation_rule_id``, ``organization_id``, optional
    ``service_account_id``, ``workspace_id``, ``scope``); ``model`` is accepted and ignored (the
    operator names its model). Also ``timeout`` and ``max_retries`` at the top level, like the OpenAI hook.

    Example: ``AnthropicBatchHook("anthropic_default").get_backend()``
    """

    provider: ClassVar[str] = "anthropic"
    conn_name_attr = "conn_id"
    default_conn_name = "anthropic_default"
    conn_type = "anthropic"
    hook_name = "Anthropic"

    @staticmethod
    def client_kwargs(conn: Connection) -> dict[str, Any]:
        """One place that turns a connection into client arguments, so sync and async cannot drift."""
        extra = conn.extra_dejson
        platform = str(extra.get("platform") or "anthropic").lower()
        if platform not in BATCH_PLATFORMS:
            raise BadConnectionError(f"connection {conn.conn_id!r} uses platform {platform!r}; the Message Batches "
                             f"API is served by the first-party Anthropic API only (platform 'anthropic')")
        kwargs: dict[str, Any] = {"max_retries": number_extra(conn.conn_id, "max_retries",
                                                              extra.get("max_retries", 3), int)}
        if extra.get("timeout"):
            kwargs["timeout"] = number_extra(conn.conn_id, "timeout", extra["timeout"], float)
        kwargs.update(client_kwargs_extra(conn.conn_id, "anthropic_client_kwargs", extra.get("anthropic_client_kwargs"),
                                          Anthropic))
        base_url = kwargs.pop("base_url", None) or conn.host
        if base_url:
            kwargs["base_url"] = _normalise_base_url(str(base_url))
        api_key = kwargs.pop("api_key", None) or conn.password or extra.get("api_key")
        if extra.get("workload_identity"):
            kwargs["credentials"] = _workload_identity(conn.conn_id, extra["workload_identity"])
        elif api_key:
            kwargs["api_key"] = api_key
        else:
            raise BadConnectionError(f"connection {conn.conn_id!r} has no API key: set its password (or a "
                             f"workload_identity extra)")
        return kwargs

    def backend_from_connection(self, conn: Connection) -> AnthropicBatchBackend:
        return AnthropicBatchBackend(AsyncAnthropic(**self.client_kwargs(conn), http_client=self.http_client))

    def get_sync_client(self) -> Anthropic:
        return Anthropic(**self.client_kwargs(self.get_connection(self.conn_id)))

    def probe(self) -> str:
        listed = self.get_sync_client().with_options(max_retries=0).messages.batches.list(limit=1)
        return f"authenticated: the Message Batches API answered ({len(listed.data)} batch listed)"


def _normalise_base_url(url: str) -> str:
    """The SDK adds ``/v1/...`` itself: accept ``api.anthropic.com``, ``https://host/`` and ``https://host/v1``."""
    url = url if "://" in url else f"https://{url}"
    url = url.rstrip("/")
    return url.removesuffix("/v1")


def _workload_identity(conn_id: str, config: dict[str, Any]) -> WorkloadIdentityCredentials:
    """Keyless auth (an OIDC token file exchanged for an Anthropic token), read as the official hook does."""
    missing = [name for name in _WIF_REQUIRED if not config.get(name)]
    if missing:
        raise BadConnectionError(f"connection {conn_id!r}: workload_identity lacks {', '.join(missing)}")
    options = {name: config[name] for name in _WIF_OPTIONAL if config.get(name)}
    return WorkloadIdentityCredentials(
        identity_token_provider=IdentityTokenFile(config["identity_token_file"]),
        federation_rule_id=config["federation_rule_id"],
        organization_id=config["organization_id"],
        **options,
    )
