"""The real-time Google sender against the emulator's quota 429 (``realtime_retry_delay_seconds``): a refused
row's CallFailed carries the ``google.rpc.RetryInfo`` delay (no ``Retry-After`` on the wire), the runner
sleeps exactly that before the resend, and the emulator sees each refused body come back no sooner than the
advised delay; every row ends answered, and the emulator bills each body once (the 429'd send is not paid,
the resend is). Gemini on the raw and the SDK path, Vertex on the SDK path it always takes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from google import genai
from google.genai import types
from google.oauth2.credentials import Credentials

from airflow_llm_batch.backends import realtime_google
from airflow_llm_batch.backends.gemini import GeminiBatchBackend
from airflow_llm_batch.backends.vertex_request import generate_content_request
from airflow_llm_batch.emulator import Emulator, EmulatorConfig
from airflow_llm_batch.pipeline.types import Endpoint, LLMRequest
from airflow_llm_batch.realtime.answer_log import AnswerLog
from airflow_llm_batch.realtime.runner import CallFailed, RealtimeRequest, RealtimeRunner, RunnerReport, RunnerSettings

KEY = "gemini-key"
MODEL = "gemini-2.5-flash"
DELAY = 0.2
#: asyncio may wake a timer up to its clock resolution early (loop._clock_resolution); nothing else is slack
EARLY_WAKE = 1e-3
REFUSED = 4
ROWS = 12


def config(**changes: Any) -> EmulatorConfig:
    return EmulatorConfig(realtime_retry_delay_seconds=DELAY, **changes)


def gemini_backend(emu: Emulator) -> GeminiBatchBackend:
    options = types.HttpOptions(base_url=emu.url)
    return GeminiBatchBackend.from_client_kwargs({"api_key": KEY, "vertexai": False, "http_options": options})


def llm_request(row: str) -> LLMRequest:
    return LLMRequest(custom_id=row, key=row, model=MODEL, endpoint=Endpoint.CHAT, prompt=f"the prompt of {row}")


class SleepLog:
    """The runner's sleep, recorded (the limiter's pauses go through it too)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)
        await asyncio.sleep(seconds)


def run(send: Callable[[dict[str, Any]], Awaitable[Any]], lines: list[dict[str, Any]], folder: Path,
        sleeps: SleepLog, close: Callable[[], Awaitable[None]] | None = None) -> RunnerReport:
    """The runner over ``lines``; ``close`` (the backend's aclose) runs in the same event loop."""
    requests = [RealtimeRequest(str(line["key"]), line, tokens=5) for line in lines]
    runner = RealtimeRunner(lambda request: send(request.body), RunnerSettings(max_concurrency=4, max_attempts=4),
                            AnswerLog(folder), sleep=sleeps)

    async def run_then_close() -> RunnerReport:
        try:
            return await runner.run(requests, len(requests))
        finally:
            if close is not None:
                await close()

    return asyncio.run(run_then_close())


def check_paid_once(emu: Emulator, report: RunnerReport, folder: Path, sleeps: SleepLog, refused: int) -> None:
    stats = emu.stats()["realtime"]
    answers = AnswerLog(folder).answered()
    rows = [f"row-{i}" for i in range(ROWS)]
    assert {row: answers[row].text for row in rows} == {row: f"the prompt of {row}" for row in rows}
    assert report.answered == ROWS and report.failed == 0 and report.unsent == 0
    assert report.retries == refused and report.calls == ROWS + refused
    assert sleeps.seconds.count(DELAY) >= refused  # the runner waited the RetryInfo delay, unscaled
    assert stats["injected_429"] == refused and stats["requests"] == ROWS + refused
    assert stats["answered"] == ROWS and stats["bodies_paid_twice"] == 0
    assert sorted(stats["answered_by_body"].values()) == [1] * ROWS  # the refused sends were not billed
    assert stats["answered_by_custom_id"] == {row: 1 for row in rows}
    waits = stats["waits_after_refusal"]
    assert len(waits) == refused and min(waits.values()) >= DELAY - EARLY_WAKE


@pytest.mark.parametrize("path", ["raw", "sdk"])
def test_gemini_rows_wait_the_retry_info_delay_and_are_paid_once(path: str, tmp_path: Path) -> None:
    sleeps = SleepLog()
    with Emulator(config(realtime_429_count=REFUSED)) as emu:
        backend = gemini_backend(emu)
        backend.realtime.use_sdk = path == "sdk"
        lines = [backend.request_line(llm_request(f"row-{i}")) for i in range(ROWS)]

        async def send(line: dict[str, Any]) -> Any:
            return await backend.realtime_send(line)

        report = run(send, lines, tmp_path, sleeps, backend.aclose)
        check_paid_once(emu, report, tmp_path, sleeps, REFUSED)


def test_vertex_rows_wait_the_retry_info_delay_and_are_paid_once(tmp_path: Path) -> None:
    sleeps = SleepLog()
    with Emulator(config(realtime_429_count=REFUSED)) as emu:
        client = genai.Client(vertexai=True, project="p", location="us-central1",
                              credentials=Credentials(token="fake"),  # type: ignore[no-untyped-call]
                              http_options=types.HttpOptions(base_url=emu.url))
        lines = [{"key": f"row-{i}", "model": MODEL, "request": generate_content_request(llm_request(f"row-{i}"))}
                 for i in range(ROWS)]

        async def send(line: dict[str, Any]) -> Any:
            return await realtime_google.send(client, line)  # what VertexBatchBackend.realtime_send calls

        report = run(send, lines, tmp_path, sleeps, client.aio.aclose)
        client.close()
        check_paid_once(emu, report, tmp_path, sleeps, REFUSED)


def test_a_share_of_refusals_is_retried_alike(tmp_path: Path) -> None:
    """``realtime_429_rate`` draws the refused bodies from their hash: the same bookkeeping holds for
    however many it picks."""
    sleeps = SleepLog()
    with Emulator(config(realtime_429_rate=0.4)) as emu:
        backend = gemini_backend(emu)
        lines = [backend.request_line(llm_request(f"row-{i}")) for i in range(ROWS)]

        async def send(line: dict[str, Any]) -> Any:
            return await backend.realtime_send(line)

        report = run(send, lines, tmp_path, sleeps, backend.aclose)
        refused = emu.stats()["realtime"]["injected_429"]
        assert refused > 0
        check_paid_once(emu, report, tmp_path, sleeps, refused)


@pytest.mark.parametrize("path", ["raw", "sdk"])
def test_the_call_failed_carries_the_retry_info_delay(path: str) -> None:
    with Emulator(config(realtime_429_count=1)) as emu:
        backend = gemini_backend(emu)
        backend.realtime.use_sdk = path == "sdk"

        async def once() -> CallFailed:
            try:
                with pytest.raises(CallFailed) as refused:
                    await backend.realtime_send(backend.request_line(llm_request("r1")))
                return refused.value
            finally:
                await backend.aclose()

        failed = asyncio.run(once())
    assert failed.code == "rate_limit_exceeded" and "RESOURCE_EXHAUSTED" in failed.message
    assert failed.retry_after == DELAY
