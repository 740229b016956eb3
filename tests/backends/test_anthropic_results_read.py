"""AnthropicBatchBackend.results() against the bundled emulator: the results file read from its bytes gives
every answer the SDK's own results stream gave, the common lines without the general decoder, and a blank
or broken line is skipped (a broken one counted and logged) instead of stopping the collect."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import httpx2
import pytest
from anthropic import AsyncAnthropic

from airflow_llm_batch.backends import anthropic_results
from airflow_llm_batch.backends.anthropic import AnthropicBatchBackend
from airflow_llm_batch.backends.anthropic_results import decode_result
from airflow_llm_batch.emulator import Emulator
from airflow_llm_batch.emulator.faults import FaultPlan
from airflow_llm_batch.exceptions import ProviderError
from airflow_llm_batch.pipeline.types import BatchState, FinishReason, LLMRequest, RawResult
from tests.backends.test_anthropic_backend import FAST, Invoice, chunk_file, connect, request, submit, wait_ended

SKIPPED = "Skipped %d unreadable line(s) in %s"


@pytest.fixture
def fresh_emulator() -> Iterator[Emulator]:
    with Emulator(FAST) as emu:
        yield emu


def mixed_requests() -> list[LLMRequest]:
    rules = "Follow these extraction rules carefully. " * 40
    return [
        request("text", "Say this back", system_prompt="Echo."),
        request("accents", "réponse 答え 😀 \"quoted\"\n\ttab"),
        request("cut", "a long answer [[emulator:truncate]]"),
        request("tool", "ACME 12.50", response_schema=Invoice.model_json_schema(), schema_name="Invoice"),
        request("bad", "x [[emulator:error:overloaded_error]]"),
        *(request(f"c{i}", f"doc {i}", system_prompt=rules, params={"cache_system_prompt": True}) for i in range(3)),
    ]


async def ended_batch(backend: AnthropicBatchBackend, tmp_path: Path, requests: list[LLMRequest]) -> str:
    batch_id = await submit(backend, chunk_file(tmp_path, backend, requests))
    assert (await wait_ended(backend, batch_id)).state == BatchState.COMPLETED
    return batch_id


async def sdk_stream_answers(emu: Emulator, batch_id: str) -> list[RawResult]:
    """What results() gave before: the SDK's JSONL stream of models, each read by decode_result."""
    async with AsyncAnthropic(base_url=emu.anthropic_base_url, api_key="k") as client:
        return [decode_result(line) async for line in await client.messages.batches.results(batch_id)]


async def test_every_emulator_line_gives_what_the_sdk_stream_gave(
        fresh_emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = connect(fresh_emulator)
    general: list[bytes] = []
    read_generally = anthropic_results.results_object

    def counted(line: bytes) -> object:
        general.append(line)
        return read_generally(line)

    try:
        batch_id = await ended_batch(backend, tmp_path, mixed_requests())
        monkeypatch.setattr(anthropic_results, "results_object", counted)
        got = [answer async for answer in backend.results(batch_id)]
    finally:
        await backend.aclose()
    assert got == await sdk_stream_answers(fresh_emulator, batch_id)
    by_id = {answer.custom_id: answer for answer in got}
    assert sorted(by_id) == sorted(r.custom_id for r in mixed_requests())
    assert by_id["accents"].text == "réponse 答え 😀 \"quoted\"\n\ttab"
    assert by_id["cut"].ok and by_id["cut"].finish_reason is FinishReason.LENGTH
    assert Invoice.model_validate_json(by_id["tool"].text or "").vendor == "ACME 12.50"
    assert by_id["bad"].error_code == "overloaded_error"
    assert sorted(answer.usage.cached_input_tokens > 0 for key, answer in by_id.items() if key in ("c0", "c1", "c2")) \
        == [False, True, True]
    assert len(general) == 2  # only the tool call and the errored line went the general way


async def test_broken_lines_are_counted_and_skipped_and_the_other_answers_read(
        fresh_emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    plan = FaultPlan(malformed_output_rate=0.25, seed=9)
    keys = [f"m{i}" for i in range(40)]
    broken = {key for key in keys if plan.malformed_selected(key)}
    assert 0 < len(broken) < len(keys)
    fresh_emulator.set_fault_plan(plan)
    backend = connect(fresh_emulator)
    try:
        batch_id = await ended_batch(backend, tmp_path, [request(key, f"row {key}") for key in keys])
        with caplog.at_level(logging.WARNING, logger="airflow_llm_batch.backends.anthropic"):
            got = [answer async for answer in backend.results(batch_id)]
    finally:
        await backend.aclose()
    assert sorted(answer.custom_id for answer in got) == sorted(set(keys) - broken)
    assert all(answer.ok and answer.text == f"row {answer.custom_id}" for answer in got)
    assert fresh_emulator.stats()["anthropic"]["malformed_lines"] == len(broken)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [(r.msg, r.args) for r in warnings] == [(SKIPPED, (len(broken), f"the results of batch {batch_id}"))]


class BlankLinesInResults(httpx2.AsyncHTTPTransport):
    """The emulator's results file with blank lines (and a final newline missing): the real answers, spaced."""

    spaced = 0

    async def handle_async_request(self, req: httpx2.Request) -> httpx2.Response:
        response = await super().handle_async_request(req)
        if not req.url.path.endswith("/results"):
            return response
        body = await response.aread()
        await response.aclose()
        spaced = b"\n" + body.replace(b"\n", b"\n\r\n\n", 1).rstrip(b"\n")
        assert spaced.startswith(b"\n") and b"\n\r\n\n" in spaced  # blank lines: empty ones and a lone \r
        self.spaced += 1
        return httpx2.Response(response.status_code, headers={"content-type": "application/binary"}, content=spaced)


async def test_blank_lines_are_skipped_without_a_warning(
        fresh_emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    transport = BlankLinesInResults()
    backend = connect(fresh_emulator, http_client=httpx2.AsyncClient(transport=transport))
    try:
        batch_id = await ended_batch(backend, tmp_path, mixed_requests())
        with caplog.at_level(logging.WARNING, logger="airflow_llm_batch.backends.anthropic"):
            got = [answer async for answer in backend.results(batch_id)]
    finally:
        await backend.aclose()
    assert got == await sdk_stream_answers(fresh_emulator, batch_id)
    assert len(got) == len(mixed_requests()) and transport.spaced == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_results_download_failing_past_the_client_retries_says_what_happens_next(
        fresh_emulator: Emulator, tmp_path: Path) -> None:
    backend = connect(fresh_emulator, max_retries=1)
    try:
        batch_id = await ended_batch(backend, tmp_path, [request("a", "one"), request("b", "two")])
        results_path = f"/v1/messages/batches/{batch_id}/results"
        fresh_emulator.inject_fault(500, count=2, path_prefix=results_path, method="GET")  # more than 1 retry
        with pytest.raises(ProviderError) as caught:
            _ = [answer async for answer in backend.results(batch_id)]
        message = str(caught.value)
        assert f"downloading the results of batch {batch_id} failed after the client's 1 retries" in message
        assert "(InternalServerError, status 500)" in message and caught.value.status_code == 500
        assert "the task's next try downloads them again and nothing is resubmitted or paid twice" in message
        fresh_emulator.inject_fault(500, count=1, path_prefix=results_path, method="GET")  # the retry gets through
        got = {answer.custom_id: answer.text async for answer in backend.results(batch_id)}
    finally:
        await backend.aclose()
    assert got == {"a": "one", "b": "two"}
    stats = fresh_emulator.stats()["anthropic"]
    assert stats["http_errors_by_status"] == {"500": 3}
    assert stats["batches_created"] == 1 and stats["requests_by_custom_id"] == {"a": 1, "b": 1}  # never sent again


class ResultsCloses(httpx2.AsyncHTTPTransport):
    """Counts the results downloads opened and the ones whose response stream was closed."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = self.closed = 0

    async def handle_async_request(self, req: httpx2.Request) -> httpx2.Response:
        response = await super().handle_async_request(req)
        if req.url.path.endswith("/results"):
            self.opened += 1
            response.stream = CountedClose(response.stream, self)
        return response


class CountedClose(httpx2.AsyncByteStream):
    def __init__(self, inner: Any, owner: ResultsCloses) -> None:
        self.inner, self.owner = inner, owner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for piece in self.inner:
            yield piece

    async def aclose(self) -> None:
        self.owner.closed += 1
        await self.inner.aclose()


async def test_closing_the_results_early_closes_the_download(fresh_emulator: Emulator, tmp_path: Path) -> None:
    transport = ResultsCloses()
    backend = connect(fresh_emulator, http_client=httpx2.AsyncClient(transport=transport))
    try:
        batch_id = await ended_batch(backend, tmp_path, [request(f"e{i}", f"row {i}") for i in range(5)])
        async with aclosing(backend.results(batch_id)) as answers:
            first = await anext(answers)
            assert (transport.opened, transport.closed) == (1, 0)  # still streaming
        assert first.ok and transport.closed == 1  # closed with the generator, before the client is
    finally:
        await backend.aclose()
