"""The real-time runner against an in-process provider that counts what it is paid for.

The bundled emulator gains real-time endpoints with the operator's real-time mode (issue 13); until then
the runner is driven through its ``send`` seam by a provider double that keeps the books a real
provider would: calls received, answers paid per custom_id, peak concurrency, refusals.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from pathlib import Path

import pytest

from airflow_llm_batch.pipeline.types import RawResult, Usage
from airflow_llm_batch.realtime.answer_log import AnswerLog
from airflow_llm_batch.realtime.runner import CallFailed, RealtimeRequest, RealtimeRunner, RunnerSettings


class Provider:
    """Answers one request at a time per call; refuses over ``cap`` in flight and every ``refuse_every``
    first send with 429 + Retry-After; ``fail`` maps custom_id -> error code answered instead."""

    def __init__(self, cap: int = 1000, refuse_every: int = 0, fail: dict[str, str] | None = None) -> None:
        self.cap, self.refuse_every, self.fail = cap, refuse_every, fail or {}
        self.in_flight = self.peak = 0
        self.calls: Counter[str] = Counter()
        self.paid: Counter[str] = Counter()

    async def send(self, request: RealtimeRequest) -> RawResult:
        self.calls[request.custom_id] += 1
        if self.in_flight >= self.cap:
            raise CallFailed("rate_limit_exceeded", "too many requests in flight", retry_after=0.01)
        first_send = self.calls[request.custom_id] == 1
        if self.refuse_every and first_send and sum(self.calls.values()) % self.refuse_every == 0:
            raise CallFailed("rate_limit_exceeded", "first send refused", retry_after=0.01)
        if request.custom_id in self.fail:
            raise CallFailed(self.fail[request.custom_id], "refused by the provider")
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(0.002)
        finally:
            self.in_flight -= 1
        self.paid[request.custom_id] += 1
        return RawResult(request.custom_id, ok=True, text=f"answer to {request.body['n']}", usage=Usage(5, 1))


def _requests(n: int) -> list[RealtimeRequest]:
    return [RealtimeRequest(f"row-{i}", {"n": i}, tokens=5) for i in range(n)]


def _run(provider: Provider, folder: Path, n: int, **settings: object) -> RealtimeRunner:
    runner = RealtimeRunner(provider.send, RunnerSettings(backoff_base=0.001, **settings), AnswerLog(folder))  # type: ignore[arg-type]
    asyncio.run(runner.run(_requests(n), n))
    return runner


def test_every_row_lands_once_under_a_concurrency_cap_and_refusals(tmp_path: Path) -> None:
    provider = Provider(cap=8, refuse_every=5)
    runner = _run(provider, tmp_path, 400, max_concurrency=8)
    answered = AnswerLog(tmp_path).answered()
    assert len(answered) == 400 and all(a.ok for a in answered.values())
    assert answered["row-17"].text == "answer to 17"
    assert set(provider.paid.values()) == {1}, "a body was paid twice"
    assert sum(provider.paid.values()) == 400
    assert provider.peak <= 8
    assert runner.report.retries > 0 and runner.report.answered == 400 and runner.report.failed == 0


def test_a_resumed_run_sends_only_what_the_log_does_not_hold(tmp_path: Path) -> None:
    earlier = AnswerLog(tmp_path)
    for i in range(60):
        earlier.append(RawResult(f"row-{i}", ok=True, text="kept"))
    earlier.append(RawResult("row-60", ok=False, error_code="rate_limit_exceeded", error_message="refused"))
    earlier.close()
    provider = Provider()
    runner = _run(provider, tmp_path, 100)
    assert sorted(provider.paid) == sorted(f"row-{i}" for i in range(60, 100))  # the refusal was never billed
    assert runner.report.already_answered == 60
    assert AnswerLog(tmp_path).answered()["row-3"].text == "kept"


def test_a_systemic_error_stops_every_worker(tmp_path: Path) -> None:
    provider = Provider(fail={f"row-{i}": "authentication_error" for i in range(1000)})
    runner = _run(provider, tmp_path, 1000, max_concurrency=4)
    assert runner.report.breaker is not None and runner.report.breaker.code == "authentication_error"
    assert sum(provider.calls.values()) <= 4  # at most the calls already started
    assert runner.report.unsent == 1000
    assert AnswerLog(tmp_path).answered() == {}  # nothing recorded: a later try sends them all


def test_a_row_error_is_the_rows_final_answer_and_retries_stop_at_max_attempts(tmp_path: Path) -> None:
    provider = Provider(fail={"row-1": "invalid_request_error", "row-2": "server_error"})
    runner = _run(provider, tmp_path, 5, max_attempts=3)
    answered = AnswerLog(tmp_path).answered()
    assert answered["row-1"].error_code == "invalid_request_error" and provider.calls["row-1"] == 1
    assert answered["row-2"].error_code == "server_error" and provider.calls["row-2"] == 3
    assert runner.report.failed == 2 and runner.report.answered == 3


def test_progress_lines_say_rows_rate_and_time_left(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="airflow_llm_batch.realtime.progress")
    _run(Provider(), tmp_path, 50, progress_every=0.0)
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("Real-time: 1 / 50 rows (2.0%)") for line in lines)
    assert "Real-time: 50 / 50 rows (100.0%)" in lines[-1] and "done in" in lines[-1]


def test_an_unexpected_error_fails_its_row_and_never_stalls_the_run(tmp_path: Path) -> None:
    async def broken(request: RealtimeRequest) -> RawResult:
        raise KeyError("messages")

    runner = RealtimeRunner(broken, RunnerSettings(max_concurrency=2), AnswerLog(tmp_path))
    report = asyncio.run(asyncio.wait_for(runner.run(_requests(30), 30), timeout=60))
    answered = AnswerLog(tmp_path).answered()
    assert report.failed == 30 and len(answered) == 30
    assert answered["row-7"].error_code == "client_error" and "KeyError" in (answered["row-7"].error_message or "")
