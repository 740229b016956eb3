"""Google's quota 429 on the emulator's real-time routes: with ``realtime_retry_delay_seconds`` set, a Gemini
or Vertex ``:generateContent`` refused with a 429 (``realtime_429_count``, ``realtime_429_rate`` or the
concurrency limit) is ``RESOURCE_EXHAUSTED`` with its delay as ``google.rpc.RetryInfo`` in the error's
details and no ``Retry-After`` header; the refused send is not billed, the resend is; the emulator records
how long the client waited between the two. Other providers keep their own 429."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from airflow_llm_batch.emulator import Emulator, EmulatorConfig
from airflow_llm_batch.emulator.cli import build_parser, main
from airflow_llm_batch.emulator.gemini_api import quota_exhausted

BODY = {"contents": [{"role": "user", "parts": [{"text": "over quota"}]}]}
GEMINI = "/v1beta/models/gemini-2.5-flash:generateContent"
VERTEX = "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent"
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def retry_infos(answer: httpx.Response) -> list[dict[str, Any]]:
    details: list[dict[str, Any]] = answer.json()["error"]["details"]
    return [detail for detail in details if detail["@type"] == RETRY_INFO]


@pytest.mark.parametrize("path", [GEMINI, VERTEX])
def test_a_counted_429_is_googles_quota_error_and_the_resend_is_paid_once(path: str) -> None:
    config = EmulatorConfig(realtime_429_count=1, realtime_retry_delay_seconds=0.25)
    with Emulator(config) as emu, httpx.Client(base_url=emu.url, headers={"x-goog-api-key": "k"}) as http:
        refused = http.post(path, json=BODY)
        answered = http.post(path, json=BODY)
        again = http.post(path, json={"contents": [{"role": "user", "parts": [{"text": "another"}]}]})
        stats = emu.stats()["realtime"]
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == 429 and error["status"] == "RESOURCE_EXHAUSTED" and "quota" in error["message"]
    assert retry_infos(refused) == [{"@type": RETRY_INFO, "retryDelay": "0.25s"}]
    assert "retry-after" not in refused.headers and "retry-after-ms" not in refused.headers
    assert answered.status_code == 200 and again.status_code == 200  # the count is spent: one refusal only
    assert stats["injected_429"] == 1 and stats["requests"] == 3 and stats["answered"] == 2
    assert sorted(stats["answered_by_body"].values()) == [1, 1] and stats["bodies_paid_twice"] == 0
    (wait,) = stats["waits_after_refusal"].values()
    assert wait >= 0  # resent at once here: the emulator only records the gap, the client decides it


def test_the_recorded_wait_covers_the_clients_own_sleep() -> None:
    config = EmulatorConfig(realtime_429_count=1, realtime_retry_delay_seconds=0.1)
    with Emulator(config) as emu, httpx.Client(base_url=emu.url, headers={"x-goog-api-key": "k"}) as http:
        assert http.post(GEMINI, json=BODY).status_code == 429
        slept_from = time.monotonic()
        time.sleep(0.1)
        slept = time.monotonic() - slept_from
        assert http.post(GEMINI, json=BODY).status_code == 200
        (wait,) = emu.stats()["realtime"]["waits_after_refusal"].values()
    assert wait >= slept  # refusal -> resend spans the sleep between them


def test_busy_429s_on_google_routes_carry_retry_info_too() -> None:
    async def burst(emu: Emulator, n: int) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=emu.url, headers={"x-goog-api-key": "k"}) as http:
            return await asyncio.gather(*(
                http.post(GEMINI, json={"contents": [{"role": "user", "parts": [{"text": f"r{i}"}]}]})
                for i in range(n)))

    config = EmulatorConfig(realtime_max_concurrency=1, realtime_latency_seconds=0.3, realtime_retry_delay_seconds=7)
    with Emulator(config) as emu:
        answers = asyncio.run(burst(emu, 4))
        stats = emu.stats()["realtime"]
    busy = [answer for answer in answers if answer.status_code == 429]
    assert len(busy) == stats["refused_busy"] > 0
    assert all(retry_infos(answer)[0]["retryDelay"] == "7s" for answer in busy)


def test_other_providers_keep_their_own_429_and_the_rate_applies_too() -> None:
    config = EmulatorConfig(realtime_429_rate=1.0, realtime_retry_delay_seconds=2)
    with Emulator(config) as emu, httpx.Client(base_url=emu.url, headers={"authorization": "Bearer k"}) as http:
        openai = http.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "x"}]})
        gemini = http.post(GEMINI, json=BODY)
    assert openai.status_code == 429 and openai.headers["retry-after-ms"] == "10"
    assert "details" not in openai.json()["error"]
    assert gemini.status_code == 429 and retry_infos(gemini)[0]["retryDelay"] == "2s"


def test_without_a_delay_google_429s_are_unchanged() -> None:
    with Emulator(EmulatorConfig(realtime_429_count=1)) as emu, httpx.Client(base_url=emu.url) as http:
        refused = http.post(GEMINI, json=BODY, headers={"x-goog-api-key": "k"})
    assert refused.status_code == 429 and refused.headers["retry-after-ms"] == "10"
    assert "details" not in refused.json()["error"]


@pytest.mark.parametrize(("seconds", "written"), [(22, "22s"), (0.5, "0.5s"), (1e-05, "0.00001s"), (0, "0s")])
def test_the_delay_is_a_protobuf_duration(seconds: float, written: str) -> None:
    (info,) = [detail for detail in json.loads(quota_exhausted(seconds).text)["error"]["details"]
               if detail["@type"] == RETRY_INFO]
    assert info["retryDelay"] == written


@pytest.mark.parametrize("changes", [{"realtime_429_count": -1}, {"realtime_429_count": 1.5},
                                     {"realtime_retry_delay_seconds": -1.0},
                                     {"realtime_retry_delay_seconds": float("nan")}])
def test_retry_info_settings_out_of_range_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(changes))):
        EmulatorConfig(**changes)


def test_the_command_line_sets_the_delay_and_refuses_a_bad_one(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    assert parser.parse_args([]).realtime_retry_delay_seconds is None
    assert parser.parse_args(["--realtime-retry-delay-seconds", "2.5"]).realtime_retry_delay_seconds == 2.5
    with pytest.raises(SystemExit):
        main(["--port", "0", "--realtime-retry-delay-seconds", "-1"])  # refused before anything listens
    assert "realtime_retry_delay_seconds" in capsys.readouterr().err
