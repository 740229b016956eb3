"""The raw real-time send (backends/raw_realtime_send.py) against the bundled emulator: the same answer
as the SDK send for the same line, per provider; failures mapped as the SDK path maps them; a bounded
set of sockets under a burst; the session closed by the backend's ``aclose``."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlparse

import pytest
from anthropic import AsyncAnthropic
from openai import AsyncAzureOpenAI, AsyncOpenAI

from airflow_llm_batch.backends.anthropic import AnthropicBatchBackend
from airflow_llm_batch.backends.azure_openai import AzureOpenAIBatchBackend
from airflow_llm_batch.backends.gemini import GeminiBatchBackend
from airflow_llm_batch.backends.openai import OpenAIBatchBackend
from airflow_llm_batch.emulator import Emulator, EmulatorConfig
from airflow_llm_batch.pipeline.policy import RETRYABLE_CODES
from airflow_llm_batch.pipeline.types import Endpoint, LLMRequest
from airflow_llm_batch.realtime.runner import CallFailed
from tests.triggers.test_shared_backends import open_connections_to

KEY = "raw-send-key"
Backend = OpenAIBatchBackend | AnthropicBatchBackend | GeminiBatchBackend


def _openai(emu: Emulator, key: str) -> Backend:
    return OpenAIBatchBackend(AsyncOpenAI(base_url=emu.openai_base_url, api_key=key))


def _azure(emu: Emulator, key: str) -> Backend:
    return AzureOpenAIBatchBackend(AsyncAzureOpenAI(azure_endpoint=emu.url, api_key=key, api_version="2024-10-21"))


def _anthropic(emu: Emulator, key: str) -> Backend:
    return AnthropicBatchBackend(AsyncAnthropic(base_url=emu.anthropic_base_url, api_key=key))


BACKENDS: dict[str, Callable[[Emulator, str], Backend]] = {
    "openai": _openai, "azure_openai": _azure, "anthropic": _anthropic}


def line(backend: Backend, row: str, endpoint: Endpoint = Endpoint.CHAT) -> dict[str, Any]:
    params = {"max_tokens": 64} if backend.name == "anthropic" else {}
    return backend.request_line(LLMRequest(custom_id=row, key=row, model="my-model", endpoint=endpoint,
                                           prompt=f"the prompt of {row}", params=params))


async def send_both(backend: Backend, request_line: dict[str, Any],
                    sdk_line: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """(raw outcome, SDK outcome) of the line (the SDK sends ``sdk_line`` if given): the answer, or the
    CallFailed raised."""
    outcomes = []
    for use_sdk, sent in ((False, request_line), (True, sdk_line or request_line)):
        backend.realtime.use_sdk = use_sdk
        try:
            outcomes.append(await backend.realtime_send(sent))
        except CallFailed as exc:
            outcomes.append(exc)
    backend.realtime.use_sdk = False
    await backend.aclose()
    return outcomes[0], outcomes[1]


@pytest.fixture(scope="module")
def keyed() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(host="127.0.0.1", port=0, api_key=KEY)) as emu:
        yield emu


@pytest.mark.parametrize("provider", sorted(BACKENDS))
def test_the_raw_send_answers_as_the_sdk_send(provider: str, keyed: Emulator) -> None:
    """Same line, same RawResult; each send carries the row's header (counted by the emulator) and the raw
    one went out on the backend's own session."""
    backend = BACKENDS[provider](keyed, KEY)
    keyed.reset_stats()
    raw, sdk = asyncio.run(send_both(backend, line(backend, f"{provider}-row")))
    assert raw == sdk and raw.ok and raw.text == f"the prompt of {provider}-row"
    assert keyed.stats()["realtime"]["answered_by_custom_id"] == {f"{provider}-row": 2}
    assert backend.realtime.sender() is not None


@pytest.mark.parametrize("endpoint", [Endpoint.RESPONSES, Endpoint.EMBEDDINGS])
def test_responses_and_embeddings_answer_as_through_the_sdk(endpoint: Endpoint, keyed: Emulator) -> None:
    backend = _openai(keyed, KEY)
    raw, sdk = asyncio.run(send_both(backend, line(backend, "r1", endpoint)))
    assert raw == sdk and raw.ok


@pytest.mark.parametrize("provider", sorted(BACKENDS))
def test_a_refused_key_is_the_auth_failure_the_sdk_path_reports(provider: str, keyed: Emulator) -> None:
    backend = BACKENDS[provider](keyed, "wrong")
    raw, sdk = asyncio.run(send_both(backend, line(backend, "r1")))
    assert isinstance(raw, CallFailed) and isinstance(sdk, CallFailed)
    assert raw.code == sdk.code and raw.code in {"invalid_api_key", "authentication_error"}
    assert "wrong" not in raw.message and "401" in raw.message


@pytest.mark.parametrize("provider", sorted(BACKENDS))
def test_a_429_carries_the_servers_retry_after(provider: str) -> None:
    with Emulator(EmulatorConfig(realtime_429_rate=1.0)) as emu:
        backend = BACKENDS[provider](emu, KEY)
        raw, sdk = asyncio.run(send_both(backend, line(backend, "r1"), line(backend, "r2")))
    assert isinstance(raw, CallFailed) and isinstance(sdk, CallFailed)  # each body's first send is refused
    assert raw.code == sdk.code == "rate_limit_exceeded"
    assert raw.retry_after is not None and raw.retry_after > 0 and raw.retry_after == sdk.retry_after


@pytest.mark.parametrize("provider", sorted(BACKENDS))
def test_a_500_is_retryable(provider: str) -> None:
    with Emulator(EmulatorConfig(realtime_5xx_rate=1.0)) as emu:
        backend = BACKENDS[provider](emu, KEY)
        raw, sdk = asyncio.run(send_both(backend, line(backend, "r1"), line(backend, "r2")))
    assert isinstance(raw, CallFailed) and isinstance(sdk, CallFailed)
    assert raw.code == sdk.code and raw.code in RETRYABLE_CODES and "HTTP 500" in raw.message


def test_a_refused_connection_is_a_connection_failure() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = OpenAIBatchBackend(AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY))
    raw, sdk = asyncio.run(send_both(backend, line(backend, "r1")))
    assert isinstance(raw, CallFailed) and isinstance(sdk, CallFailed)
    assert raw.code == sdk.code == "server_error" and raw.retry_after is None


def test_a_burst_opens_at_most_the_sessions_connections() -> None:
    """200 sends at once over a session of 8 sockets: all answered, at most 8 sockets, at most 8 in flight."""
    with Emulator(EmulatorConfig(realtime_latency_seconds=0.01)) as emu:
        backend = _openai(emu, KEY)
        backend.realtime.connections = 8
        port = urlparse(emu.openai_base_url).port
        assert port is not None

        async def burst() -> tuple[list[Any], int]:
            try:
                answers = await asyncio.gather(*(backend.realtime_send(line(backend, f"r{i}")) for i in range(200)))
                return answers, open_connections_to(port)
            finally:
                await backend.aclose()

        answers, opened = asyncio.run(burst())
        stats = emu.stats()["realtime"]
    assert all(answer.ok for answer in answers) and stats["answered"] == 200
    assert 0 < opened <= 8 and stats["peak_in_flight"] <= 8


def session_after_send_and_close(backend: Backend, request_line: dict[str, Any]) -> Any:
    """The raw session a backend opened for one send, after ``aclose``."""

    async def send_then_close() -> Any:
        await backend.realtime_send(request_line)
        sender = backend.realtime.sender()
        assert sender is not None and sender.session is not None
        session = sender.session
        await backend.aclose()
        return session

    return asyncio.run(send_then_close())


def test_aclose_closes_the_session(keyed: Emulator) -> None:
    backend = _openai(keyed, KEY)
    assert session_after_send_and_close(backend, line(backend, "r1")).closed


def test_the_raw_send_goes_through_the_proxy_the_environment_names(
        keyed: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDKs' httpx client honours HTTP(S)_PROXY; so does the raw session when one is set. A proxy on a
    closed loopback port makes the send a connection failure, and the emulator never sees the request."""
    from airflow_llm_batch.backends.raw_http import uses_proxy

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]  # closed once the block ends: nothing listens there
    assert not uses_proxy({}) and uses_proxy({"https_proxy": "http://proxy:3128"})
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead}")
    backend = _openai(keyed, KEY)
    keyed.reset_stats()

    async def send() -> Any:
        try:
            return await backend.realtime_send(line(backend, "through-proxy"))
        finally:
            await backend.aclose()

    with pytest.raises(CallFailed) as failed:
        asyncio.run(send())
    assert failed.value.code in RETRYABLE_CODES
    assert keyed.stats()["realtime"]["answered"] == 0
