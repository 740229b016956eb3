"""Provider ``openai_compatible``: an ``openai`` connection to any OpenAI-compatible server (vLLM, Ollama...).

The real SDK over HTTP to the bundled emulator, with and without its batch routes
(``EmulatorConfig(batch_api=False)`` answers 404 there, as vLLM does); what the server was asked is
counted on the emulator's side.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.definitions.connection import Connection

from airflow_llm_batch.backends.batch_api_probe import batch_api_available
from airflow_llm_batch.backends.openai import OpenAIBatchBackend
from airflow_llm_batch.backends.openai_compatible import OpenAICompatibleBackend
from airflow_llm_batch.emulator import Emulator, EmulatorConfig
from airflow_llm_batch.exceptions import BadConnectionError, InvalidInputError
from airflow_llm_batch.hooks import hook_class
from airflow_llm_batch.hooks.openai_compatible import NO_KEY, OpenAICompatibleHook
from airflow_llm_batch.operators.effective_prices import effective_price, effective_table
from airflow_llm_batch.pipeline.types import Endpoint, LLMRequest
from airflow_llm_batch.realtime.answer_log import AnswerLog
from airflow_llm_batch.realtime.runner import RealtimeRequest, RealtimeRunner, RunnerSettings


@pytest.fixture(scope="module")
def no_batch() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(batch_api=False)) as emu:
        yield emu


@pytest.fixture(scope="module")
def with_batch() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig()) as emu:
        yield emu


def _backend(emu: Emulator, **extra: Any) -> OpenAICompatibleBackend:
    conn = Connection(conn_id="vllm", conn_type="openai", host=emu.openai_base_url, extra=json.dumps(extra))
    return OpenAICompatibleHook("vllm").backend_from_connection(conn)


def _available_twice(backend: OpenAICompatibleBackend) -> tuple[bool, bool]:
    async def ask() -> tuple[bool, bool]:
        try:
            return await batch_api_available(backend), await batch_api_available(backend)
        finally:
            await backend.aclose()

    return asyncio.run(ask())


@pytest.mark.parametrize(("which", "expected"), [("no_batch", False), ("with_batch", True)])
def test_one_probe_finds_the_batch_api_and_creates_nothing(which: str, expected: bool,
                                                           request: pytest.FixtureRequest) -> None:
    emu: Emulator = request.getfixturevalue(which)
    emu.reset_stats()
    assert _available_twice(_backend(emu)) == (expected, expected)
    stats = emu.stats()["openai"]
    assert stats["api_requests"] == 1  # one probe, cached on the backend for the second question
    assert stats["batches_created"] == 0 and stats["files_uploaded"] == 0


@pytest.mark.parametrize(("which", "said"), [("with_batch", False), ("no_batch", True), ("with_batch", "false")])
def test_the_connection_extra_wins_without_any_request(which: str, said: object,
                                                       request: pytest.FixtureRequest) -> None:
    emu: Emulator = request.getfixturevalue(which)
    emu.reset_stats()
    backend = _backend(emu, batch_api=said)
    expected = said is True
    assert _available_twice(backend) == (expected, expected)
    assert backend.probes == 0 and emu.stats()["openai"]["api_requests"] == 0


def test_a_bad_batch_api_extra_names_the_connection(with_batch: Emulator) -> None:
    with pytest.raises(BadConnectionError, match=r"'vllm'.*'batch_api' must be true or false"):
        _backend(with_batch, batch_api=3)


def test_other_backends_answer_from_their_class(with_batch: Emulator) -> None:
    from openai import AsyncOpenAI

    backend = OpenAIBatchBackend(AsyncOpenAI(base_url=with_batch.openai_base_url, api_key="k"))
    with_batch.reset_stats()
    assert asyncio.run(batch_api_available(backend)) is True
    assert with_batch.stats()["openai"]["api_requests"] == 0


def test_a_refused_probe_is_a_clear_error(tmp_path: Path) -> None:
    with Emulator(EmulatorConfig(api_key="right")) as emu:
        conn = Connection(conn_id="ds", conn_type="openai", host=emu.openai_base_url, password="wrong")
        backend = OpenAICompatibleHook("ds").backend_from_connection(conn)
        refused = r"probe GET .*/v1/batches\?limit=1 was refused \(401\).*password.*batch_api"
        with pytest.raises(BadConnectionError, match=refused):
            _available_twice(backend)


def test_batch_mode_on_a_server_without_batch_api_fails_before_any_upload(no_batch: Emulator) -> None:
    backend = _backend(no_batch)
    no_batch.reset_stats()

    async def submit() -> str:
        try:
            return await backend.submit(lambda: io.BytesIO(b'{"url": "/v1/chat/completions"}\n'), 1, {})
        finally:
            await backend.aclose()

    with pytest.raises(InvalidInputError, match=r"server at http://127\.0\.0\.1:\d+/v1/? has no batch API "
                                                r"\(404 on /v1/batches\); use mode='realtime' or 'auto'"):
        asyncio.run(submit())
    assert no_batch.stats()["openai"]["files_uploaded"] == 0


def test_a_connection_without_key_works_and_never_sends_the_process_key(no_batch: Emulator,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-real-openai-key")
    assert hook_class("openai_compatible") is OpenAICompatibleHook
    backend = _backend(no_batch)
    assert backend.client.api_key == NO_KEY
    assert _available_twice(backend) == (False, False)


def test_the_host_is_required() -> None:
    with pytest.raises(BadConnectionError, match=r"'local'.*host to the server's base URL"):
        OpenAICompatibleHook.client_kwargs(Connection(conn_id="local", conn_type="openai"))


def test_a_key_and_client_kwargs_are_honoured(with_batch: Emulator) -> None:
    conn = Connection(conn_id="ds", conn_type="openai", host="http://unused.invalid/v1", password="sk-ds",
                      extra=json.dumps({"openai_client_kwargs": {"base_url": with_batch.openai_base_url,
                                                                  "default_headers": {"x-team": "data"}}}))
    kwargs = OpenAICompatibleHook.client_kwargs(conn)
    assert kwargs["api_key"] == "sk-ds" and kwargs["base_url"] == with_batch.openai_base_url
    assert kwargs["default_headers"] == {"x-team": "data"}


def test_realtime_send_answers_each_row_with_its_own_answer(no_batch: Emulator, tmp_path: Path) -> None:
    backend = _backend(no_batch)
    lines = [RealtimeRequest(f"row-{i}", backend.request_line(LLMRequest(
        custom_id=f"row-{i}", key=f"row-{i}", model="llama-3.1-8b", endpoint=Endpoint.CHAT,
        prompt=f"prompt number {i}"))) for i in range(12)]
    no_batch.reset_stats()

    async def run() -> None:
        runner = RealtimeRunner(lambda r: backend.realtime_send(r.body), RunnerSettings(max_concurrency=4),
                                AnswerLog(tmp_path))
        try:
            await runner.run(lines, len(lines))
        finally:
            await backend.aclose()

    asyncio.run(run())
    answers = AnswerLog(tmp_path).answered()
    assert {cid: a.text for cid, a in answers.items()} == {f"row-{i}": f"prompt number {i}" for i in range(12)}
    assert no_batch.stats()["realtime"]["answered_by_custom_id"] == {f"row-{i}": 1 for i in range(12)}


def test_self_hosted_models_cost_zero_unless_priced(tmp_path: Path) -> None:
    price, _ = effective_price("openai_compatible", "llama-3.1-8b-instruct")
    assert price is not None and all(value == 0 for value in price.to_dict().values())
    given, _ = effective_price("openai_compatible", "deepseek-chat",
                               {"openai_compatible": {"deepseek-chat": {"input": 0.27, "output": 1.1}}})
    assert given is not None and (given.input, given.output) == (0.27, 1.1)
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"taken_on": "2026-11-30", "providers": {
        "openai_compatible": {"qwen-72b": {"input": 0.9, "output": 0.9}}}}))
    table = effective_table(str(prices))
    assert table.price_for("openai_compatible", "qwen-72b").output == 0.9  # type: ignore[union-attr]
    assert table.price_for("openai_compatible", "other").output == 0  # type: ignore[union-attr]
    assert effective_price("openai", "no-such-model")[0] is None  # other providers still never guess


def test_the_test_button_says_the_server_has_no_batch_api(no_batch: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_VLLM", json.dumps({"conn_type": "openai", "host": no_batch.openai_base_url}))
    ok, message = OpenAICompatibleHook("vllm").test_connection()
    assert ok and message.endswith("no batch API (404 on /batches): real-time only"), message
