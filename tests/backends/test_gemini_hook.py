"""GeminiBatchHook: connection -> google-genai client arguments, the backend it builds, and the key
staying out of trigger kwargs."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from airflow.sdk.definitions.connection import Connection

from airflow_llm_batch.backends.gemini import DEFAULT_INLINE_MAX_BYTES, GeminiBatchBackend
from airflow_llm_batch.hooks import hook_class
from airflow_llm_batch.hooks.gemini import GeminiBatchHook
from airflow_llm_batch.triggers.batch import LLMBatchTrigger


def conn(**fields: object) -> Connection:
    extra = fields.pop("extra", None)
    return Connection(conn_id="g", conn_type="gemini", extra=json.dumps(extra) if extra else None,
                      **fields)  # type: ignore[arg-type]


def test_provider_name_resolves_to_the_hook() -> None:
    assert hook_class("gemini") is GeminiBatchHook
    assert GeminiBatchHook().conn_id == "gemini_default" and GeminiBatchHook.conn_type == "llm_batch_gemini"


def test_client_kwargs_from_a_full_connection() -> None:
    kwargs = GeminiBatchHook.client_kwargs(conn(password="secret", host="http://127.0.0.1:9/v1beta/",
                                                extra={"timeout": 2.5, "headers": {"x-team": "data"}}))
    options = kwargs["http_options"]
    assert kwargs["api_key"] == "secret" and kwargs["vertexai"] is False
    assert (options.base_url, options.api_version, options.timeout) == ("http://127.0.0.1:9", "v1beta", 2500)
    assert options.headers == {"x-team": "data"}


def test_client_kwargs_defaults_and_explicit_version() -> None:
    plain = GeminiBatchHook.client_kwargs(conn(password="k"))["http_options"]
    assert plain.base_url is None and plain.api_version is None
    pinned = GeminiBatchHook.client_kwargs(conn(password="k", host="example.test", extra={"api_version": "v1"}))
    assert (pinned["http_options"].base_url, pinned["http_options"].api_version) == ("https://example.test", "v1")


def test_a_connection_without_key_is_refused() -> None:
    with pytest.raises(ValueError, match="no API key"):
        GeminiBatchHook.client_kwargs(conn(host="http://127.0.0.1:9"))


async def test_backend_from_connection_and_its_inline_threshold() -> None:
    hook = GeminiBatchHook("g")
    default = hook.backend_from_connection(conn(password="k", host="http://127.0.0.1:9"))
    files_only = hook.backend_from_connection(conn(password="k", host="http://127.0.0.1:9",
                                                   extra={"inline_max_bytes": 0}))
    try:
        assert isinstance(default, GeminiBatchBackend) and default.inline_max_bytes == DEFAULT_INLINE_MAX_BYTES
        assert files_only.inline_max_bytes == 0
    finally:
        await default.aclose()
        await files_only.aclose()


@pytest.fixture
def env_connection(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_HOOK_TEST", json.dumps(
        {"conn_type": "gemini", "password": "very-secret-key", "host": "http://127.0.0.1:9"}))
    yield "gemini_hook_test"


def test_trigger_kwargs_name_the_connection_never_the_key(env_connection: str) -> None:
    client = GeminiBatchHook(env_connection).get_sync_client()
    client.close()
    _, kwargs = LLMBatchTrigger(provider="gemini", conn_id=env_connection, batch_ids=["batches/abc"]).serialize()
    assert kwargs["conn_id"] == env_connection
    assert "very-secret-key" not in json.dumps(kwargs)
