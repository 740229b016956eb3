"""Gemini real-time sends through the raw HTTP path (backends/realtime_google.py ``send_raw``) against the
bundled emulator: the same RawResult as the SDK send for the same line, with the SDK never called; Google's
error vocabulary (``error.status``) mapped to the same policy codes on both paths, so an auth refusal trips
the runner's breaker with its systemic code; a 429 ``RESOURCE_EXHAUSTED`` with ``Retry-After`` retried and
each row paid once; the SDK path kept where the connection gives no raw target."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.genai import types

from airflow_llm_batch.backends import raw_realtime_send, realtime_google
from airflow_llm_batch.backends.gemini import GeminiBatchBackend
from airflow_llm_batch.backends.raw_http import gemini_target
from airflow_llm_batch.emulator import Emulator, EmulatorConfig
from airflow_llm_batch.pipeline.policy import RETRYABLE_CODES, SYSTEMIC_CODES
from airflow_llm_batch.pipeline.types import Endpoint, LLMRequest
from airflow_llm_batch.realtime.answer_log import AnswerLog
from airflow_llm_batch.realtime.runner import CallFailed, RealtimeRequest, RealtimeRunner, RunnerReport, RunnerSettings
from tests.backends.lean_servers import Seen, answer, read_request, serving
from tests.backends.test_raw_realtime_send import send_both, session_after_send_and_close

KEY = "gemini-raw-key"
MODEL = "gemini-2.5-flash"


def kwargs_for(emu: Emulator, key: str = KEY, **options: Any) -> dict[str, Any]:
    return {"api_key": key, "vertexai": False, "http_options": types.HttpOptions(base_url=emu.url, **options)}


def backend_for(emu: Emulator, key: str = KEY) -> GeminiBatchBackend:
    return GeminiBatchBackend.from_client_kwargs(kwargs_for(emu, key))


def line(backend: GeminiBatchBackend, row: str, prompt: str | None = None, **params: Any) -> dict[str, Any]:
    return backend.request_line(LLMRequest(custom_id=row, key=row, model=MODEL, endpoint=Endpoint.CHAT,
                                           prompt=prompt or f"the prompt of {row}", system_prompt="Be brief.",
                                           params=params))


class SdkCalls:
    """Counts the SDK's ``generate_content`` calls of one client (the raw path must make none)."""

    def __init__(self, backend: GeminiBatchBackend, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        models = backend.client.aio.models
        original = models.generate_content

        async def counted(**kwargs: Any) -> Any:
            self.count += 1
            return await original(**kwargs)

        monkeypatch.setattr(models, "generate_content", counted)




def run_rows(backend: GeminiBatchBackend, rows: int, folder: Path,
             settings: RunnerSettings) -> tuple[RunnerReport, dict[str, Any]]:
    requests = [RealtimeRequest(f"row-{i}", line(backend, f"row-{i}", f"prompt number {i}"), tokens=5)
                for i in range(rows)]

    async def send_all() -> RunnerReport:
        runner = RealtimeRunner(lambda request: backend.realtime_send(request.body), settings, AnswerLog(folder))
        try:
            return await runner.run(requests, rows)
        finally:
            await backend.aclose()

    return asyncio.run(send_all()), AnswerLog(folder).answered()


@pytest.fixture(scope="module")
def keyed() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(host="127.0.0.1", port=0, api_key=KEY)) as emu:
        yield emu


def test_the_raw_send_answers_as_the_sdk_send_without_calling_the_sdk(
        keyed: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same line, same RawResult, same body on the wire (one body hash, answered twice); the raw send
    went out on the backend's own session, not through ``generate_content``."""
    backend = backend_for(keyed)
    calls = SdkCalls(backend, monkeypatch)
    keyed.reset_stats()
    request_line = line(backend, "g-row", temperature=0.2, max_output_tokens=64)

    async def raw_then_sdk() -> tuple[Any, int, Any]:
        raw = await backend.realtime_send(request_line)
        sdk_calls_after_raw = calls.count
        backend.realtime.use_sdk = True
        sdk = await backend.realtime_send(request_line)
        await backend.aclose()
        return raw, sdk_calls_after_raw, sdk

    raw, sdk_calls_after_raw, sdk = asyncio.run(raw_then_sdk())
    assert sdk_calls_after_raw == 0 and calls.count == 1
    assert raw == sdk and raw.ok and raw.text == "the prompt of g-row" and raw.usage.input_tokens > 0
    stats = keyed.stats()["realtime"]
    assert stats["answered_by_custom_id"] == {"g-row": 2}
    assert list(stats["answered_by_body"].values()) == [2]  # the SDK and the raw path send the same body


def test_each_row_is_joined_to_its_own_answer_through_the_raw_path(
        keyed: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    backend = backend_for(keyed)
    calls = SdkCalls(backend, monkeypatch)
    keyed.reset_stats()
    report, answers = run_rows(backend, 40, tmp_path, RunnerSettings(max_concurrency=8))
    assert report.answered == 40 and report.failed == 0 and calls.count == 0
    assert {cid: answer.text for cid, answer in answers.items()} == {f"row-{i}": f"prompt number {i}"
                                                                       for i in range(40)}
    assert keyed.stats()["realtime"]["answered_by_custom_id"] == {f"row-{i}": 1 for i in range(40)}


@pytest.mark.parametrize(("status", "code"), [
    ("PERMISSION_DENIED", "permission_denied"), ("UNAUTHENTICATED", "authentication_error"),
    ("RESOURCE_EXHAUSTED", "rate_limit_exceeded"), ("INVALID_ARGUMENT", "invalid_request_error"),
    ("NOT_FOUND", "not_found"), ("UNAVAILABLE", "service_unavailable"), ("INTERNAL", "server_error")])
def test_googles_error_status_maps_alike_on_both_paths(status: str, code: str, keyed: Emulator) -> None:
    """The emulator answers the row with a Google error (``{"error": {"code", "status", "message"}}``): both
    paths read the canonical ``status``, where the Stainless decoder would read the bare HTTP number."""
    backend = backend_for(keyed)
    raw, sdk = asyncio.run(send_both(backend, line(backend, "e1", f"[[emulator:error:{status}]] hi")))
    assert isinstance(raw, CallFailed) and isinstance(sdk, CallFailed)
    assert raw.code == sdk.code == code and status in raw.message and raw.message == sdk.message


def test_the_stainless_decoder_would_lose_googles_codes() -> None:
    """Why Gemini has its own decoder: ``error.code`` is the HTTP number on Google APIs."""
    body = b'{"error": {"code": 404, "message": "no such model", "status": "NOT_FOUND"}}'
    assert raw_realtime_send.refused(404, body, {}).code == "404"
    assert realtime_google.refused(404, body, {}).code == "not_found"
    page = realtime_google.refused(502, b"<html>bad gateway</html>", {"retry-after": "3"})
    assert page.code in RETRYABLE_CODES and page.retry_after == 3.0 and "UNAVAILABLE" in page.message


def test_a_refused_key_is_the_systemic_code_on_both_paths(keyed: Emulator) -> None:
    backend = backend_for(keyed, "wrong-key")
    raw, sdk = asyncio.run(send_both(backend, line(backend, "r1")))
    assert isinstance(raw, CallFailed) and isinstance(sdk, CallFailed)
    assert raw.code == sdk.code == "authentication_error" and raw.code in SYSTEMIC_CODES
    assert "wrong-key" not in raw.message and "401" in raw.message


def test_a_refused_key_trips_the_breaker_with_the_systemic_code(
        keyed: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    backend = backend_for(keyed, "wrong-key")
    calls = SdkCalls(backend, monkeypatch)
    report, answers = run_rows(backend, 30, tmp_path, RunnerSettings(max_concurrency=2))
    assert report.breaker is not None and report.breaker.code == "authentication_error"
    assert report.answered == 0 and not answers and report.unsent > 0 and calls.count == 0


def test_a_permission_refusal_trips_the_breaker_too(keyed: Emulator, tmp_path: Path) -> None:
    """A 403 ``PERMISSION_DENIED`` (the project may not use the model) stops the run as a 401 does."""
    backend = backend_for(keyed)
    requests = [RealtimeRequest(f"p{i}", line(backend, f"p{i}", f"[[emulator:error:PERMISSION_DENIED]] {i}"),
                                tokens=5) for i in range(20)]

    async def send_all() -> RunnerReport:
        runner = RealtimeRunner(lambda request: backend.realtime_send(request.body),
                                RunnerSettings(max_concurrency=2), AnswerLog(tmp_path))
        try:
            return await runner.run(requests, len(requests))
        finally:
            await backend.aclose()

    report = asyncio.run(send_all())
    assert report.breaker is not None and report.breaker.code == "permission_denied" and report.answered == 0


def test_a_429_carries_the_servers_retry_after() -> None:
    with Emulator(EmulatorConfig(realtime_429_rate=1.0)) as emu:
        backend = backend_for(emu)
        raw, sdk = asyncio.run(send_both(backend, line(backend, "r1"), line(backend, "r2")))
    assert isinstance(raw, CallFailed) and isinstance(sdk, CallFailed)  # each body's first send is refused
    assert raw.code == sdk.code == "rate_limit_exceeded" and "RESOURCE_EXHAUSTED" in raw.message
    assert raw.retry_after is not None and raw.retry_after > 0 and raw.retry_after == sdk.retry_after


def test_429s_are_retried_and_each_row_is_paid_once(tmp_path: Path) -> None:
    config = EmulatorConfig(realtime_429_rate=0.3, realtime_max_concurrency=4, realtime_latency_seconds=0.002)
    with Emulator(config) as emu:
        backend = backend_for(emu)
        report, answers = run_rows(backend, 200, tmp_path,
                                   RunnerSettings(max_concurrency=6, max_attempts=30, backoff_base=0.01))
        stats = emu.stats()["realtime"]
    assert len(answers) == 200 and all(answer.ok for answer in answers.values())
    assert answers["row-123"].text == "prompt number 123"
    assert stats["injected_429"] > 0 and report.retries >= stats["injected_429"]
    assert stats["answered"] == 200 and stats["bodies_paid_twice"] == 0
    assert stats["answered_by_custom_id"] == {f"row-{i}": 1 for i in range(200)}


def test_the_raw_target_follows_the_clients_version_headers_and_timeout(keyed: Emulator) -> None:
    target = gemini_target(kwargs_for(keyed, api_version="v1", headers={"x-team": "t1"}, timeout=7000))
    assert target is not None and target.base == f"{keyed.url}/v1" and target.timeout == 7.0
    assert target.headers["x-team"] == "t1" and target.headers["x-goog-api-key"] == KEY
    assert KEY not in repr(target)
    backend = GeminiBatchBackend.from_client_kwargs(kwargs_for(keyed, api_version="v1"))
    answer = asyncio.run(send_both(backend, line(backend, "v1-row")))[0]
    assert answer.ok and answer.text == "the prompt of v1-row"


def test_without_a_raw_target_the_sdk_sends(keyed: Emulator, monkeypatch: pytest.MonkeyPatch,
                                            caplog: pytest.LogCaptureFixture) -> None:
    """A backend built on a bare client (or a connection gemini_target cannot express) keeps the SDK path,
    one call per row without the SDK's automatic function calling (and its INFO line per call)."""
    caplog.set_level(logging.INFO, logger="google_genai")
    backend = GeminiBatchBackend(backend_for(keyed).client)
    calls = SdkCalls(backend, monkeypatch)
    assert backend.realtime.sender() is None
    assert gemini_target({**kwargs_for(keyed), "vertexai": True}) is None
    assert gemini_target({**kwargs_for(keyed), "api_key": None}) is None

    async def send() -> Any:
        try:
            return await backend.realtime_send(line(backend, "sdk-row"))
        finally:
            await backend.aclose()

    keyed.reset_stats()
    assert asyncio.run(send()).text == "the prompt of sdk-row" and calls.count == 1
    assert keyed.stats()["realtime"]["requests"] == 1
    assert not [record for record in caplog.records if "AFC" in record.getMessage()]


def test_aclose_closes_the_raw_session(keyed: Emulator) -> None:
    backend = backend_for(keyed)
    assert session_after_send_and_close(backend, line(backend, "r1")).closed


QUOTA_429 = json.dumps({"error": {
    "code": 429, "status": "RESOURCE_EXHAUSTED", "message": "Quota exceeded for metric: generate_content_requests",
    "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaId": "PerMinute"}]},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]}}).encode()


async def quota_refusal(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
    """Answer every request as Gemini answers an exhausted quota: a 429 whose hint is in ``details``."""
    while await read_request(reader, seen) is not None:
        writer.write(answer(429, QUOTA_429, "content-type: application/json"))
        await writer.drain()


def test_a_quota_429_waits_the_retry_info_delay_on_both_paths() -> None:
    """Google sends its hint as ``google.rpc.RetryInfo`` in the error's details, not as ``Retry-After``: both
    paths read it (a real google-genai client and the raw sender against a scripted loopback server)."""

    async def both() -> tuple[Any, Any, int]:
        async with serving(quota_refusal) as (url, seen):
            kwargs = {"api_key": KEY, "vertexai": False, "http_options": types.HttpOptions(base_url=url)}
            backend = GeminiBatchBackend.from_client_kwargs(kwargs)
            raw, sdk = await send_both(backend, line(backend, "q1"))
            return raw, sdk, len(seen.order)

    raw, sdk, requests = asyncio.run(both())
    assert requests == 2  # one call per path: neither the SDK nor the sender retried by itself
    assert isinstance(raw, CallFailed) and isinstance(sdk, CallFailed)
    assert raw.code == sdk.code == "rate_limit_exceeded" and raw.retry_after == sdk.retry_after == 37.0
    assert "RESOURCE_EXHAUSTED (429)" in raw.message


def test_a_retry_after_header_wins_over_the_retry_info_delay() -> None:
    failed = realtime_google.refused(429, QUOTA_429, {"retry-after": "2"})
    assert failed.retry_after == 2.0
    assert realtime_google.refused(400, QUOTA_429.replace(b"429", b"400"), {}).retry_after is None
