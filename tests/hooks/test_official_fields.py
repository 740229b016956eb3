"""The official providers' connection fields are honoured or refused, never dropped: the OpenAI
provider's ``extra.openai_client_kwargs``, Anthropic's ``anthropic_client_kwargs`` and our Azure
connection's ``azure_client_kwargs`` reach the SDK client; a name the client cannot take, or an
``auth_type`` this package does not support, is a BadConnectionError naming the connection and field."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from airflow.sdk.definitions.connection import Connection

from airflow_llm_batch.exceptions import BadConnectionError
from airflow_llm_batch.hooks import hook_class
from airflow_llm_batch.hooks.anthropic import AnthropicBatchHook
from airflow_llm_batch.hooks.azure_openai import AzureOpenAIBatchHook
from airflow_llm_batch.hooks.openai import OpenAIBatchHook

#: nothing listens there: traffic sent to the connection's host instead of the client kwargs fails
DEAD_HOST = "http://127.0.0.1:9/v1"


def api_requests(emu: Any, provider: str) -> int:
    return int(emu.stats()[provider]["api_requests"])


def test_openai_client_kwargs_base_url_sends_the_traffic_there(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {"openai_client_kwargs": {"base_url": emulator.openai_base_url, "timeout": 20, "max_retries": 0,
                                      "default_headers": {"x-team": "data"}}}
    monkeypatch.setenv("AIRFLOW_CONN_OFFICIAL_OPENAI", json.dumps(
        {"conn_type": "openai", "password": "test-key", "host": DEAD_HOST, "extra": extra}))
    hook = OpenAIBatchHook("official_openai")
    before = api_requests(emulator, "openai")
    ok, message = hook.test_connection()
    assert ok, message
    assert api_requests(emulator, "openai") == before + 1

    async def find() -> list[str]:
        backend = hook.get_backend()
        try:
            return await backend.find("no-such-tag", created_after=0.0)
        finally:
            await backend.aclose()

    assert asyncio.run(find()) == []
    assert api_requests(emulator, "openai") > before + 1
    kwargs = OpenAIBatchHook.client_kwargs(hook.get_connection("official_openai"))
    assert kwargs["default_headers"] == {"x-team": "data"} and kwargs["timeout"] == 20.0


def conn(conn_type: str, extra: dict[str, Any], host: str | None = "http://127.0.0.1:9") -> Connection:
    return Connection(conn_id="official", conn_type=conn_type, host=host, password="k", extra=json.dumps(extra))


def test_openai_client_kwargs_win_over_the_connection_fields() -> None:
    kwargs = OpenAIBatchHook.client_kwargs(conn("openai", {
        "organization": "org-extra", "openai_client_kwargs": {"organization": "org-official", "api_key": "k2"}}))
    assert kwargs["organization"] == "org-official" and kwargs["api_key"] == "k2"
    assert kwargs["base_url"] == "http://127.0.0.1:9"


@pytest.mark.parametrize(("hook", "conn_type", "extra", "field"), [
    (OpenAIBatchHook, "openai", {"openai_client_kwargs": {"base_urll": "http://x"}}, "base_urll"),
    (OpenAIBatchHook, "openai", {"openai_client_kwargs": {"http_client": {}}}, "http_client"),
    (OpenAIBatchHook, "openai", {"openai_client_kwargs": {"timeout": "soon"}}, "openai_client_kwargs.timeout"),
    (OpenAIBatchHook, "openai", {"openai_client_kwargs": ["base_url"]}, "openai_client_kwargs"),
    (OpenAIBatchHook, "openai", {"auth_type": "workload_identity"}, "auth_type 'workload_identity'"),
    (AzureOpenAIBatchHook, "llm_batch_azure_openai", {"azure_client_kwargs": {"deployment": "d"}}, "deployment"),
    (AnthropicBatchHook, "anthropic", {"anthropic_client_kwargs": {"organization": "o"}}, "organization"),
])
def test_a_client_argument_that_cannot_be_passed_is_refused(hook: Any, conn_type: str, extra: dict[str, Any],
                                                            field: str) -> None:
    with pytest.raises(BadConnectionError, match=r"connection 'official'") as caught:
        hook.client_kwargs(conn(conn_type, extra))
    assert field in str(caught.value)


def test_azure_client_kwargs_reach_the_client() -> None:
    extra = {"azure_client_kwargs": {"azure_deployment": "gpt-4o-batch", "default_headers": {"x-a": "b"}}}
    kwargs = AzureOpenAIBatchHook.client_kwargs(conn("llm_batch_azure_openai", extra, "https://r.openai.azure.com"))
    assert kwargs["azure_deployment"] == "gpt-4o-batch" and kwargs["default_headers"] == {"x-a": "b"}
    backend = hook_class("azure_openai")().backend_from_connection(conn("llm_batch_azure_openai", extra,
                                                                       "https://r.openai.azure.com"))
    assert "gpt-4o-batch" in str(backend.client.base_url)  # type: ignore[attr-defined]
