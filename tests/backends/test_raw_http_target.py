"""backends/raw_http.stainless_target: what the lean client takes from an SDK client. The connection's
headers and the key go along; the SDK's identity (User-Agent, X-Stainless-*) does not, unless the
connection set it itself: the lean client says who it is (and the emulator counts it so)."""

from __future__ import annotations

import anthropic
import openai

from airflow_llm_batch.backends.raw_http import stainless_target


def _names(headers: dict[str, str]) -> set[str]:
    return {name.lower() for name in headers}


def test_the_sdks_identity_stays_behind_and_the_connections_headers_go_along() -> None:
    client = openai.AsyncOpenAI(api_key="sk-test", base_url="http://127.0.0.1:9/v1", organization="org-1",
                                default_headers={"X-Team": "search"})
    target = stainless_target(client)
    assert target is not None
    names = _names(target.headers)
    assert {"authorization", "openai-organization", "x-team"} <= names
    assert "user-agent" not in names and not any(name.startswith("x-stainless") for name in names)
    assert any(name.lower().startswith("x-stainless") for name in client.default_headers)  # the SDK has them


def test_a_user_agent_the_connection_sets_is_kept() -> None:
    client = openai.AsyncOpenAI(api_key="sk-test", base_url="http://127.0.0.1:9/v1",
                                default_headers={"User-Agent": "acme-etl/2.1"})
    target = stainless_target(client)
    assert target is not None and target.headers["User-Agent"] == "acme-etl/2.1"


def test_anthropic_keeps_its_version_header() -> None:
    client = anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url="http://127.0.0.1:9")
    target = stainless_target(client)
    assert target is not None
    names = _names(target.headers)
    assert "anthropic-version" in names and "user-agent" not in names
    assert names & {"x-api-key", "authorization"}  # the key, as this SDK version sends it
