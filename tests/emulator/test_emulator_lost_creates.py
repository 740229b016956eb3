"""The fault plan's lost creates (``lost_creates``, ``hung_creates``): the batch is created and billed,
the client never learns it. With the official SDKs (no retries, so each call is one request)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from airflow_llm_batch.emulator import Emulator, EmulatorConfig, FaultPlan
from airflow_llm_batch.emulator.cli import build_parser, fault_plan_from_args

CHAT = "/v1/chat/completions"


@pytest.fixture
def emu(fast_config: EmulatorConfig) -> Iterator[Emulator]:
    """A fresh emulator per test: fault counters and statistics start from zero."""
    with Emulator(fast_config) as emulator:
        yield emulator


def _openai_create(client: openai.OpenAI, h: Any, custom_id: str) -> Any:
    uploaded = client.files.create(file=("in.jsonl", h.jsonl([h.chat_line(custom_id, "x")])), purpose="batch")
    return client.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")


def test_a_lost_create_answer_hides_a_batch_that_exists(emu: Emulator, h: Any) -> None:
    emu.set_fault_plan(FaultPlan(lost_creates=1))
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as client:
        with pytest.raises(openai.InternalServerError) as lost:
            _openai_create(client, h, "lost")
        assert lost.value.status_code == 502 and lost.value.body["type"] == "server_error"  # type: ignore[index]
        assert [b.id for b in client.batches.list().data] == emu.stats()["openai"]["batches"]
        assert h.wait_openai(client, emu.stats()["openai"]["batches"][0]).status == "completed"
        assert _openai_create(client, h, "next").status == "validating"  # only the first create is lost
    stats = emu.stats()["openai"]
    assert stats["batches_created"] == 2 and stats["create_answers_lost"] == 1
    assert stats["succeeded_by_custom_id"] == {"lost": 1}  # billed although the client saw a failure
    assert stats["http_errors_by_status"] == {"502": 1}


def test_lost_creates_count_across_providers_and_keep_each_error_shape(emu: Emulator) -> None:
    emu.set_fault_plan(FaultPlan(lost_creates=2, lost_create_status=500))
    with anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="k", max_retries=0) as claude:
        params = {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "x"}]}
        with pytest.raises(anthropic.InternalServerError) as lost:
            claude.messages.batches.create(requests=[{"custom_id": "a", "params": params}])  # type: ignore[list-item]
        assert lost.value.status_code == 500 and lost.value.body["error"]["type"] == "api_error"  # type: ignore[index]
        assert len(claude.messages.batches.list().data) == 1
    gemini = genai.Client(api_key="k", http_options=types.HttpOptions(
        base_url=emu.url, retry_options=types.HttpRetryOptions(attempts=1)))
    inline = [types.InlinedRequest(contents="x", metadata={"key": "g"})]
    with pytest.raises(genai_errors.ServerError) as lost_gemini:
        gemini.batches.create(model="gemini-2.5-flash", src=inline, config={"display_name": "tag-1"})
    assert lost_gemini.value.code == 500 and lost_gemini.value.status == "INTERNAL"
    assert [job.display_name for job in gemini.batches.list()] == ["tag-1"]
    assert gemini.batches.create(model="gemini-2.5-flash", src=inline).name  # the budget of 2 is spent
    assert emu.stats()["anthropic"]["create_answers_lost"] == emu.stats()["gemini"]["create_answers_lost"] == 1


def test_a_dropped_connection_after_the_create(emu: Emulator, h: Any) -> None:
    emu.set_fault_plan(FaultPlan(lost_creates=1, lost_create_status=0))
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as client:
        with pytest.raises(openai.APIConnectionError):
            _openai_create(client, h, "dropped")
        assert len(client.batches.list().data) == 1
    assert emu.stats()["openai"]["create_answers_lost"] == 1
    assert emu.stats()["openai"]["http_errors_injected"] == 0  # no answer at all, so no error status


def test_a_hung_create_times_the_client_out_and_the_batch_exists(emu: Emulator, h: Any) -> None:
    emu.set_fault_plan(FaultPlan(lost_creates=1, hung_creates=1))
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0, timeout=1.0) as client:
        with pytest.raises(openai.InternalServerError):
            _openai_create(client, h, "first")  # lost first, then hung
        with pytest.raises(openai.APITimeoutError):
            _openai_create(client, h, "second")
        assert len(client.batches.list().data) == 2  # the emulator answers again once the client gave up
        assert _openai_create(client, h, "third").id
    assert emu.stats()["openai"]["create_answers_lost"] == 2


def test_the_emulator_stops_while_a_create_hangs(fast_config: EmulatorConfig, h: Any) -> None:
    emu = Emulator(fast_config.replace(fault_plan=FaultPlan(hung_creates=1, hang_seconds=300)))
    emu.start()
    seen: list[BaseException] = []

    def create() -> None:
        with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0, timeout=300) as client:
            try:
                _openai_create(client, h, "hung")
            except openai.APIError as exc:
                seen.append(exc)

    server_thread = emu._thread  # other emulators (the session's) run threads of the same name
    assert server_thread is not None
    caller = threading.Thread(target=create)
    caller.start()
    try:
        while emu.stats()["openai"]["create_answers_lost"] == 0 and caller.is_alive():
            caller.join(0.05)
    finally:
        emu.stop()
    caller.join(60)
    assert not caller.is_alive() and isinstance(seen[0], openai.APIConnectionError)
    server_thread.join(10)
    assert not server_thread.is_alive()


def test_plan_fields_of_lost_creates_are_checked() -> None:
    plan = FaultPlan(lost_creates=2, lost_create_status=0, hung_creates=1, hang_seconds=5)
    assert FaultPlan.from_json(plan.to_json()) == plan
    for bad in ({"lost_create_status": 503}, {"lost_create_status": 529}, {"lost_create_status": 429},
                {"hang_seconds": 0}, {"hang_seconds": 301}, {"lost_creates": -1}, {"hung_creates": 1.5}):
        with pytest.raises((ValueError, TypeError)):
            FaultPlan(**bad)
    args = build_parser().parse_args(["--lost-creates", "1", "--lost-create-status", "0", "--hung-creates", "2",
                                      "--hang-seconds", "7"])
    assert fault_plan_from_args(args) == FaultPlan(lost_creates=1, lost_create_status=0, hung_creates=2,
                                                   hang_seconds=7.0)
