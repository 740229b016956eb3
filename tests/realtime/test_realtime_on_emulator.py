"""The real-time runner over each backend's ``realtime_send`` against the bundled emulator: every row
joined to its own answer; and 2,000 rows against a server capped at 8 requests in flight refusing 20%
of first sends with 429: every row answered, each body paid exactly once (counted by the emulator)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from anthropic import AsyncAnthropic
from google import genai
from google.genai import types
from google.oauth2.credentials import Credentials
from openai import AsyncAzureOpenAI, AsyncOpenAI

from airflow_llm_batch.backends.anthropic import AnthropicBatchBackend
from airflow_llm_batch.backends.azure_openai import AzureOpenAIBatchBackend
from airflow_llm_batch.backends.gemini import GeminiBatchBackend
from airflow_llm_batch.backends.openai import OpenAIBatchBackend
from airflow_llm_batch.backends.vertex import VertexBatchBackend
from airflow_llm_batch.backends.vertex_staging import GoogleClients, VertexStaging
from airflow_llm_batch.emulator import Emulator, EmulatorConfig
from airflow_llm_batch.google.settings import GoogleSettings
from airflow_llm_batch.pipeline.types import Endpoint, LLMRequest
from airflow_llm_batch.realtime.answer_log import AnswerLog
from airflow_llm_batch.realtime.runner import RealtimeRequest, RealtimeRunner, RunnerReport, RunnerSettings

Backend = OpenAIBatchBackend | AnthropicBatchBackend | GeminiBatchBackend | VertexBatchBackend


def _vertex(emu: Emulator) -> VertexBatchBackend:
    client = genai.Client(vertexai=True, project="p", location="us-central1",
                          credentials=Credentials(token="fake"),  # type: ignore[no-untyped-call]
                          http_options=types.HttpOptions(base_url=emu.url))
    return VertexBatchBackend(client, staging=VertexStaging.parse("gs://unused/realtime", None, "p"),
                              clients=GoogleClients(GoogleSettings(conn_id=None, project="p"), "p"))


BACKENDS: dict[str, tuple[str, Callable[[Emulator], Backend]]] = {
    "openai": ("gpt-4o-mini", lambda emu: OpenAIBatchBackend(AsyncOpenAI(base_url=emu.openai_base_url,
                                                                           api_key="k"))),
    "azure_openai": ("my-deployment", lambda emu: AzureOpenAIBatchBackend(AsyncAzureOpenAI(
        azure_endpoint=emu.url, api_key="k", api_version="2024-10-21"))),
    "anthropic": ("claude-haiku-4-5", lambda emu: AnthropicBatchBackend(AsyncAnthropic(
        base_url=emu.anthropic_base_url, api_key="k"))),
    "gemini": ("gemini-2.5-flash", lambda emu: GeminiBatchBackend(genai.Client(
        api_key="k", http_options=types.HttpOptions(base_url=emu.url)))),
    "vertex": ("gemini-2.5-flash", _vertex),
}


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig()) as emulator:
        yield emulator


def _lines(backend: Backend, model: str, n: int, endpoint: Endpoint = Endpoint.CHAT) -> list[RealtimeRequest]:
    requests = []
    for i in range(n):
        request = LLMRequest(custom_id=f"row-{i}", key=f"row-{i}", model=model, endpoint=endpoint,
                             prompt=f"prompt number {i}", params={"max_tokens": 64} if backend.name == "anthropic"
                             else {})
        requests.append(RealtimeRequest(request.custom_id, backend.request_line(request), tokens=5))
    return requests


def _run(backend: Backend, requests: list[RealtimeRequest], folder: Path,
         settings: RunnerSettings) -> tuple[RunnerReport, dict[str, Any]]:
    async def send_all() -> RunnerReport:
        runner = RealtimeRunner(lambda request: backend.realtime_send(request.body), settings, AnswerLog(folder))
        try:
            return await runner.run(requests, len(requests))
        finally:
            await backend.aclose()

    report = asyncio.run(send_all())
    return report, AnswerLog(folder).answered()


@pytest.mark.parametrize("provider", sorted(BACKENDS))
def test_each_provider_answers_each_row_in_real_time(provider: str, emu: Emulator, tmp_path: Path) -> None:
    model, build = BACKENDS[provider]
    backend = build(emu)
    assert backend.has_batch_api
    emu.reset_stats()
    report, answers = _run(backend, _lines(backend, model, 20), tmp_path, RunnerSettings(max_concurrency=4))
    assert report.answered == 20 and report.failed == 0
    assert {cid: answer.text for cid, answer in answers.items()} == {
        f"row-{i}": f"prompt number {i}" for i in range(20)}  # the emulator echoes: each row has its own answer
    paid = emu.stats()["realtime"]["answered_by_custom_id"]
    assert sum(paid.values()) == 20
    assert paid == {f"row-{i}": 1 for i in range(20)}


@pytest.mark.parametrize("endpoint", [Endpoint.RESPONSES, Endpoint.EMBEDDINGS])
def test_openai_responses_and_embeddings_in_real_time(endpoint: Endpoint, emu: Emulator, tmp_path: Path) -> None:
    backend = OpenAIBatchBackend(AsyncOpenAI(base_url=emu.openai_base_url, api_key="k"))
    report, answers = _run(backend, _lines(backend, "m", 5, endpoint), tmp_path, RunnerSettings(max_concurrency=2))
    assert report.answered == 5
    if endpoint is Endpoint.EMBEDDINGS:
        assert all(answer.embedding for answer in answers.values())
    else:
        assert answers["row-3"].text == "prompt number 3"


def test_a_systemic_refusal_trips_the_breaker_with_the_policy_code(tmp_path: Path) -> None:
    with Emulator(EmulatorConfig(api_key="right")) as emu:
        backend = OpenAIBatchBackend(AsyncOpenAI(base_url=emu.openai_base_url, api_key="wrong"))
        report, answers = _run(backend, _lines(backend, "m", 30), tmp_path, RunnerSettings(max_concurrency=2))
    assert report.breaker is not None and report.breaker.code == "invalid_api_key"  # systemic: kept
    assert report.answered == 0 and not answers and report.unsent == 30


def test_2000_rows_capped_at_8_in_flight_with_20_percent_first_send_429s(tmp_path: Path) -> None:
    config = EmulatorConfig(realtime_max_concurrency=8, realtime_429_rate=0.2, realtime_latency_seconds=0.005)
    with Emulator(config) as emu:
        backend = OpenAIBatchBackend(AsyncOpenAI(base_url=emu.openai_base_url, api_key="k"))
        requests = _lines(backend, "gpt-4o-mini", 2000)
        report, answers = _run(backend, requests, tmp_path,
                               RunnerSettings(max_concurrency=12, max_attempts=30, backoff_base=0.01))
        stats = emu.stats()["realtime"]
    assert len(answers) == 2000 and all(answer.ok for answer in answers.values())
    assert answers["row-1234"].text == "prompt number 1234"
    assert stats["injected_429"] > 0 and stats["peak_in_flight"] <= 8
    assert stats["answered"] == 2000  # the counter counts: it must be able to fail before it is trusted
    assert set(stats["answered_by_body"].values()) == {1} and len(stats["answered_by_body"]) == 2000
    assert stats["answered_by_custom_id"] == {f"row-{i}": 1 for i in range(2000)}
    assert stats["bodies_paid_twice"] == 0
    assert report.answered == 2000 and report.retries >= stats["injected_429"]
    # the runner followed the server down instead of bouncing its 4 extra calls off the cap for ever
    assert report.lowest_concurrency is not None and report.lowest_concurrency <= 8
