"""AnthropicBatchHook: the official provider's connection fields -> SDK clients -> a working backend."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.definitions.connection import Connection
from anthropic import Anthropic, AsyncAnthropic, WorkloadIdentityCredentials

from airflow_llm_batch.backends.anthropic import AnthropicBatchBackend
from airflow_llm_batch.emulator import Emulator
from airflow_llm_batch.hooks import hook_class
from airflow_llm_batch.hooks.anthropic import AnthropicBatchHook
from airflow_llm_batch.pipeline.types import BatchState


def conn(**fields: Any) -> Connection:
    extra = fields.pop("extra", None)
    return Connection(conn_id="anthropic_test", conn_type="anthropic",
                      extra=json.dumps(extra) if extra is not None else None, **fields)


def test_the_registry_serves_anthropic_with_this_hook() -> None:
    assert hook_class("anthropic") is AnthropicBatchHook
    assert AnthropicBatchHook.conn_type == "anthropic"
    assert AnthropicBatchHook.default_conn_name == "anthropic_default"
    assert AnthropicBatchHook().conn_id == "anthropic_default"


def test_password_is_the_key_and_host_the_base_url() -> None:
    kwargs = AnthropicBatchHook.client_kwargs(conn(password="sk-1", host="http://127.0.0.1:8787"))
    assert kwargs == {"api_key": "sk-1", "base_url": "http://127.0.0.1:8787", "max_retries": 3}


@pytest.mark.parametrize(("host", "url"), [
    ("api.anthropic.com", "https://api.anthropic.com"),
    ("https://gateway.example/anthropic/", "https://gateway.example/anthropic"),
    ("https://api.anthropic.com/v1", "https://api.anthropic.com"),
])
def test_base_urls_are_normalised_for_the_sdk(host: str, url: str) -> None:
    assert AnthropicBatchHook.client_kwargs(conn(password="k", host=host))["base_url"] == url


def test_official_provider_extras_are_honoured() -> None:
    extra = {"platform": "anthropic", "model": "claude-opus-4-8", "timeout": 30, "max_retries": 1,
             "anthropic_client_kwargs": {"max_retries": 5, "default_headers": {"x-team": "data"},
                                         "base_url": "https://proxy.example"}}
    kwargs = AnthropicBatchHook.client_kwargs(conn(password="k", host="https://ignored.example", extra=extra))
    assert kwargs == {"api_key": "k", "base_url": "https://proxy.example", "timeout": 30.0, "max_retries": 5,
                      "default_headers": {"x-team": "data"}}


@pytest.mark.parametrize("platform", ["bedrock", "vertex", "foundry"])
def test_platforms_without_message_batches_are_refused(platform: str) -> None:
    with pytest.raises(ValueError, match="first-party"):
        AnthropicBatchHook.client_kwargs(conn(password="k", extra={"platform": platform}))


def test_a_connection_without_credentials_is_refused() -> None:
    with pytest.raises(ValueError, match="no API key"):
        AnthropicBatchHook.client_kwargs(conn(host="https://api.anthropic.com"))


def test_workload_identity_builds_keyless_credentials(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("oidc")
    extra = {"workload_identity": {"identity_token_file": str(token), "federation_rule_id": "fr-1",
                                   "organization_id": "org-1", "workspace_id": "ws-1"}}
    kwargs = AnthropicBatchHook.client_kwargs(conn(extra=extra))
    assert isinstance(kwargs["credentials"], WorkloadIdentityCredentials) and "api_key" not in kwargs
    with pytest.raises(ValueError, match="federation_rule_id"):
        AnthropicBatchHook.client_kwargs(conn(extra={"workload_identity": {"identity_token_file": "t"}}))


def test_sync_and_async_clients_read_the_connection_alike() -> None:
    kwargs = AnthropicBatchHook.client_kwargs(conn(password="sk-9", host="http://127.0.0.1:1"))
    sync, both = Anthropic(**kwargs), AsyncAnthropic(**kwargs)
    assert (str(sync.base_url), sync.api_key, sync.max_retries) == (str(both.base_url), both.api_key,
                                                                    both.max_retries)
    sync.close()


async def test_backend_from_the_emulator_connection_runs_a_batch(emulator: Emulator, tmp_path: Path) -> None:
    """``anthropic_emulator`` is the env connection the session's emulator fixture sets."""
    hook = AnthropicBatchHook("anthropic_emulator")
    backend = await hook.aget_backend()
    assert isinstance(backend, AnthropicBatchBackend)
    path = tmp_path / "chunk.jsonl"
    line = {"custom_id": "hook-1", "params": {"model": "claude-haiku-4-5", "max_tokens": 20,
                                              "messages": [{"role": "user", "content": "from the hook"}]}}
    path.write_text(json.dumps(line) + "\n")
    try:
        batch_id = await backend.submit(lambda: path.open("rb"), 1, {"llm_batch_tag": "hook"})
        for _ in range(500):
            if (progress := await backend.progress(batch_id)).state != BatchState.RUNNING:
                break
            await asyncio.sleep(0.02)
        assert progress.state == BatchState.COMPLETED
        assert [a.text async for a in backend.results(batch_id)] == ["from the hook"]
    finally:
        await backend.aclose()
    with hook.get_sync_client() as client:
        assert client.messages.batches.retrieve(batch_id).processing_status == "ended"
