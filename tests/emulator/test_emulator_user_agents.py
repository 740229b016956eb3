"""The emulator counts each provider's API requests by ``User-Agent`` family (``requests_by_agent``), so a
test can check on the emulator's side which client sent the traffic: the official SDKs under their own
names, the raw paths (triggers/raw_poll.py's poll, backends/raw_realtime_send.py's send on the lean client
of backends/lean_http.py) under theirs."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors, types

from airflow_llm_batch.backends.gemini import GeminiBatchBackend
from airflow_llm_batch.backends.lean_http import USER_AGENT
from airflow_llm_batch.emulator import Emulator
from airflow_llm_batch.emulator.user_agents import MAX_FAMILY, NO_AGENT, agent_family
from airflow_llm_batch.pipeline.types import Endpoint, LLMRequest
from airflow_llm_batch.triggers.raw_poll import raw_poller
from tests.emulator.conftest import Helpers

MODEL = "gemini-2.5-flash"


@pytest.mark.parametrize(("header", "family"), [
    ("OpenAI/Python 3.54.0", "OpenAI/Python"), ("AsyncOpenAI/Python 3.54.0", "AsyncOpenAI/Python"),
    ("Anthropic/Python 2.12.0", "Anthropic/Python"),
    ("google-genai-sdk/1.52.0 gl-python/3.11.7", "google-genai-sdk"),
    ("airflow-llm-batch", "airflow-llm-batch"), ("python-httpx/0.28.1", "python-httpx"),
    ("Python/3.11 aiohttp/3.12.15", "aiohttp"), ("Python/3.11", "Python"),
    (None, NO_AGENT), ("", NO_AGENT), ("   ", NO_AGENT), ("x" * 200, "x" * MAX_FAMILY)])
def test_the_family_is_the_first_product_without_its_version(header: str | None, family: str) -> None:
    assert agent_family(header) == family


def agents(emu: Emulator, provider: str) -> dict[str, int]:
    counted: dict[str, int] = emu.stats()[provider]["requests_by_agent"]
    return counted


def test_openai_sdk_traffic_is_counted_under_the_sdks_agent(emulator: Emulator, h: type[Helpers]) -> None:
    """The operator's sync SDK client uploads and creates; the triggerer's raw poll (a RawPoller from the
    async client) is the lean client under its own agent: stainless_target copies the client's headers but
    not the SDK's identity (User-Agent, X-Stainless-*), unless the connection set them itself."""
    emulator.reset_stats()
    client = openai.OpenAI(base_url=emulator.openai_base_url, api_key="k", max_retries=0)
    uploaded = client.files.create(file=("in.jsonl", h.jsonl([h.chat_line("a1", "hi")])), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    client.close()
    assert agents(emulator, "openai") == {"OpenAI/Python": 2}

    async def poll() -> Any:
        async_client = openai.AsyncOpenAI(base_url=emulator.openai_base_url, api_key="k", max_retries=0)
        poller = raw_poller("openai", async_client)
        assert poller is not None
        try:
            return await poller.progress(batch.id)
        finally:
            await poller.aclose()
            await async_client.close()

    assert asyncio.run(poll()) is not None
    assert agents(emulator, "openai") == {"OpenAI/Python": 2, USER_AGENT: 1}


def test_anthropic_sdk_traffic_is_counted_under_its_agent(emulator: Emulator) -> None:
    emulator.reset_stats()
    with anthropic.Anthropic(base_url=emulator.anthropic_base_url, api_key="k", max_retries=0) as client:
        client.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    assert agents(emulator, "anthropic") == {"Anthropic/Python": 1}


def gemini_kwargs(emu: Emulator) -> dict[str, Any]:
    return {"api_key": "k", "vertexai": False, "http_options": types.HttpOptions(base_url=emu.url)}


def test_a_gemini_batch_created_by_the_sdk_and_polled_raw_shows_both_agents(emulator: Emulator) -> None:
    """Gemini's raw target carries no SDK header: the raw poll is the lean client's own agent."""
    emulator.reset_stats()
    client = genai.Client(**gemini_kwargs(emulator))
    job = client.batches.create(model=MODEL, src=[{"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}])
    client.close()
    assert job.name is not None
    assert agents(emulator, "gemini") == {"google-genai-sdk": 1}

    async def poll() -> Any:
        poller = raw_poller("gemini", None, gemini_kwargs(emulator))
        assert poller is not None
        try:
            return await poller.progress(str(job.name))
        finally:
            await poller.aclose()

    assert asyncio.run(poll()) is not None
    assert agents(emulator, "gemini") == {"google-genai-sdk": 1, USER_AGENT: 1}


def test_gemini_real_time_raw_and_sdk_sends_show_under_their_own_agents(emulator: Emulator) -> None:
    emulator.reset_stats()
    backend = GeminiBatchBackend.from_client_kwargs(gemini_kwargs(emulator))
    line = backend.request_line(LLMRequest(custom_id="r1", key="r1", model=MODEL, endpoint=Endpoint.CHAT,
                                           prompt="hello"))

    async def raw_then_sdk() -> None:
        try:
            await backend.realtime_send(line)
            backend.realtime.use_sdk = True
            await backend.realtime_send(line)
        finally:
            await backend.aclose()

    asyncio.run(raw_then_sdk())
    assert agents(emulator, "gemini") == {USER_AGENT: 1, "google-genai-sdk": 1}
    assert emulator.stats()["realtime"]["answered_by_custom_id"] == {"r1": 2}


def test_no_header_refused_keys_and_resets(start_emulator: Any) -> None:
    """A request without ``User-Agent`` is ``(none)``; a refused key is not counted (as ``api_requests``);
    a stats reset zeroes the counter."""
    emu = start_emulator(api_key="right")
    chat = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    with httpx.Client(base_url=emu.openai_base_url) as http:
        request = http.build_request("POST", "/chat/completions", json=chat, headers={"authorization": "Bearer right"})
        del request.headers["user-agent"]
        assert http.send(request).status_code == 200
        assert http.post("/chat/completions", json=chat, headers={"authorization": "Bearer wrong"}).status_code == 401
        assert http.post("/chat/completions", json=chat, headers={"authorization": "Bearer right"}).status_code == 200
    stats = emu.stats()["openai"]
    assert stats["requests_by_agent"] == {NO_AGENT: 1, "python-httpx": 1} and stats["api_requests"] == 2
    emu.reset_stats()
    assert agents(emu, "openai") == {}


def test_gemini_traffic_on_the_v1_paths_openai_shares_counts_as_gemini(start_emulator: Any) -> None:
    """google-genai 3.x asks ``/v1/batches/...`` and ``/v1/files/...`` (OpenAI's paths too): a Gemini
    client's requests there count, and are answered, as Gemini's; OpenAI's own stay OpenAI's."""
    emu = start_emulator()
    client = genai.Client(api_key="k", vertexai=False,
                          http_options=types.HttpOptions(base_url=emu.url, api_version="v1"))
    line = b'{"key": "g1", "request": {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}}\n'
    try:
        uploaded = client.files.upload(file=io.BytesIO(line), config={"mime_type": "jsonl"})
        job = client.batches.create(model=MODEL, src=str(uploaded.name))
        while not (job := client.batches.get(name=str(job.name))).done:
            time.sleep(0.02)
        assert job.dest is not None and b'"g1"' in client.files.download(file=str(job.dest.file_name))
        assert client.files.get(name=str(uploaded.name)).name == uploaded.name
        assert job.name in {listed.name for listed in client.batches.list()}
        emu.inject_fault(404, count=1, path_prefix="/v1/batches/", method="GET")
        with pytest.raises(errors.ClientError) as caught:
            client.batches.get(name=str(job.name))
        assert caught.value.status == "NOT_FOUND"  # Google's error shape, not OpenAI's
    finally:
        client.close()
    stats = emu.stats()
    gemini_agents = agents(emu, "gemini")  # the upload URL's chunk goes out without the SDK's User-Agent
    assert stats["gemini"]["batches_created"] == 1 and set(gemini_agents) == {"google-genai-sdk", "python-httpx"}
    assert sum(gemini_agents.values()) == stats["gemini"]["api_requests"] and gemini_agents["google-genai-sdk"] >= 6
    assert stats["gemini"]["http_errors_by_status"] == {"404": 1}
    assert stats.get("openai", {}).get("api_requests", 0) == 0
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as oai:
        assert oai.batches.list().data == [] and oai.files.list().data == []  # Gemini's batch and file are not OpenAI's
    assert agents(emu, "openai") == {"OpenAI/Python": 2}
    assert emu.stats()["gemini"]["api_requests"] == stats["gemini"]["api_requests"]
