"""The emulator's real-time endpoints, through the official SDKs: every provider's ordinary endpoint
answers with the batch answer model; the concurrency limit, first-send 429/5xx injection and the
paid-once counters behave as documented."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types
from google.oauth2.credentials import Credentials

from airflow_llm_batch.emulator import Emulator, EmulatorConfig
from airflow_llm_batch.emulator.realtime_state import CUSTOM_ID_HEADER

CHAT = [{"role": "user", "content": "hello realtime"}]
NO_RETRY = types.HttpOptions(retry_options=types.HttpRetryOptions(attempts=1))


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig()) as emulator:
        yield emulator


def _openai(emu: Emulator) -> openai.OpenAI:
    return openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0)


def _realtime(emu: Emulator) -> dict[str, Any]:
    stats: dict[str, Any] = emu.stats()["realtime"]
    return stats


def test_openai_chat_responses_and_embeddings_answer_like_batch_rows(emu: Emulator) -> None:
    client = _openai(emu)
    chat = client.chat.completions.create(model="gpt-4o-mini", messages=CHAT)  # type: ignore[arg-type]
    assert chat.choices[0].message.content == "hello realtime"
    assert chat.usage is not None and chat.usage.prompt_tokens > 0
    assert client.responses.create(model="gpt-4o-mini", input="a response").output_text == "a response"
    vector = client.embeddings.create(model="text-embedding-3-small", input="embed me").data[0].embedding
    assert len(vector) == emu.config.embedding_dimensions
    stats = _realtime(emu)
    assert stats["requests_by_provider"] == {"openai": 3}
    assert stats["answered"] == 3 and len(stats["answered_by_body"]) == 3


def test_azure_openai_deployment_routes(emu: Emulator) -> None:
    client = openai.AzureOpenAI(azure_endpoint=emu.url, api_key="k", api_version="2024-10-21", max_retries=0)
    chat = client.chat.completions.create(model="my-deployment", messages=CHAT)  # type: ignore[arg-type]
    assert chat.choices[0].message.content == "hello realtime"
    assert client.responses.create(model="my-deployment", input="azure response").output_text == "azure response"
    assert _realtime(emu)["answered"] == 2


def test_anthropic_messages(emu: Emulator) -> None:
    client = anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="k", max_retries=0)
    message = client.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=CHAT)  # type: ignore[arg-type]
    assert [block.text for block in message.content if block.type == "text"] == ["hello realtime"]
    assert message.usage.service_tier == "standard"
    assert _realtime(emu)["requests_by_provider"] == {"anthropic": 1}


def test_gemini_and_vertex_generate_content(emu: Emulator) -> None:
    gemini = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=emu.url))
    assert gemini.models.generate_content(model="gemini-2.5-flash", contents="to gemini").text == "to gemini"
    vertex = genai.Client(vertexai=True, project="p", location="us-central1",
                          credentials=Credentials(token="fake"),  # type: ignore[no-untyped-call]
                          http_options=types.HttpOptions(base_url=emu.url))
    assert vertex.models.generate_content(model="gemini-2.5-flash", contents="to vertex").text == "to vertex"
    assert _realtime(emu)["requests_by_provider"] == {"gemini": 1, "vertex": 1}


def test_a_marker_error_is_the_providers_error_and_is_not_paid(emu: Emulator) -> None:
    messages = [{"role": "user", "content": "x [[emulator:error:model_not_found]]"}]
    with pytest.raises(openai.NotFoundError):
        _openai(emu).chat.completions.create(model="m", messages=messages)  # type: ignore[arg-type]
    vertex = genai.Client(vertexai=True, project="p", location="l", credentials=Credentials(token="fake"),  # type: ignore[no-untyped-call]
                          http_options=types.HttpOptions(base_url=emu.url, retry_options=NO_RETRY.retry_options))
    with pytest.raises(genai.errors.ClientError) as refused:
        vertex.models.generate_content(model="g", contents="x [[emulator:error:RESOURCE_EXHAUSTED]]")
    assert refused.value.code == 429
    stats = _realtime(emu)
    assert stats["requests"] == 2 and stats["answered"] == 0


def test_first_send_injection_refuses_a_body_once_then_answers_it() -> None:
    with Emulator(EmulatorConfig(realtime_429_rate=0.5, realtime_5xx_rate=0.5)) as emu:
        client = _openai(emu)
        outcomes: list[str] = []
        for _ in range(2):
            try:
                client.chat.completions.create(model="m", messages=CHAT)  # type: ignore[arg-type]
                outcomes.append("answered")
            except openai.RateLimitError as exc:
                assert exc.response.headers["retry-after-ms"]
                outcomes.append("429")
            except openai.InternalServerError:
                outcomes.append("5xx")
        stats = _realtime(emu)
    assert outcomes[0] in ("429", "5xx") and outcomes[1] == "answered"
    assert stats["injected_429"] + stats["injected_5xx"] == 1
    assert stats["answered"] == 1 and stats["bodies_paid_twice"] == 0


def test_paid_twice_is_counted_by_body_and_by_custom_id(emu: Emulator) -> None:
    client = _openai(emu)
    for _ in range(2):
        client.chat.completions.create(model="m", messages=CHAT, extra_headers={CUSTOM_ID_HEADER: "row-1"})  # type: ignore[arg-type]
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "other"}])
    stats = _realtime(emu)
    assert stats["answered"] == 3
    assert sorted(stats["answered_by_body"].values()) == [1, 2]
    assert stats["bodies_paid_twice"] == 1 and stats["answered_by_custom_id"] == {"row-1": 2}
    emu.reset_stats()
    assert _realtime(emu)["answered"] == 0


def test_over_the_concurrency_limit_is_a_429_with_retry_after() -> None:
    async def burst(emu: Emulator, n: int) -> list[int]:
        client = openai.AsyncOpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0)

        async def one(i: int) -> int:
            try:
                await client.chat.completions.create(model="m", messages=[{"role": "user", "content": f"r{i}"}])
                return 200
            except openai.RateLimitError as exc:
                assert "retry-after" in exc.response.headers
                return 429

        try:
            return await asyncio.gather(*(one(i) for i in range(n)))
        finally:
            await client.close()

    with Emulator(EmulatorConfig(realtime_max_concurrency=2, realtime_latency_seconds=0.5)) as emu:
        statuses = asyncio.run(burst(emu, 6))
        stats = _realtime(emu)
    assert stats["peak_in_flight"] == 2
    assert statuses.count(429) == stats["refused_busy"] > 0
    assert statuses.count(200) == stats["answered"]


@pytest.mark.parametrize("changes", [{"realtime_429_rate": 1.5}, {"realtime_5xx_rate": -0.1},
                                     {"realtime_429_rate": 0.6, "realtime_5xx_rate": 0.6},
                                     {"realtime_max_concurrency": 0}, {"realtime_latency_seconds": -1.0}])
def test_realtime_settings_out_of_range_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(changes))):
        EmulatorConfig(**changes)  # type: ignore[arg-type]
