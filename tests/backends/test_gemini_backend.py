"""GeminiBatchBackend: request translation, inline versus file submission, joining answers by key,
per-row errors, state mapping, create failures and re-attach, with the official google-genai SDK
against the bundled emulator."""

from __future__ import annotations

import asyncio
import functools
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from google import genai
from google.genai import _common as sdk_common
from google.genai import batches as sdk_batches
from google.genai import types
from pydantic import BaseModel, Field

from airflow_llm_batch.backends.gemini import GeminiBatchBackend
from airflow_llm_batch.backends.gemini_request import inline_body_size, inlined_request
from airflow_llm_batch.backends.generate_content import decode_answer
from airflow_llm_batch.emulator import Emulator, EmulatorConfig
from airflow_llm_batch.exceptions import InvalidInputError, ProviderError
from airflow_llm_batch.pipeline.backend import FindHints, OpenChunk
from airflow_llm_batch.pipeline.manifest import ChunkState
from airflow_llm_batch.pipeline.parsing import OutputParser
from airflow_llm_batch.pipeline.render import RequestSpec
from airflow_llm_batch.pipeline.run import BatchRun
from airflow_llm_batch.pipeline.storage import StoragePath
from airflow_llm_batch.pipeline.types import BatchState, Endpoint, LLMRequest, RawResult, RowStatus

MODEL = "gemini-2.5-flash"
FAST = EmulatorConfig(validating_seconds=0.02, requests_per_second=20_000.0, finalizing_seconds=0.02,
                      cancelling_seconds=0.02)
CREATE_PATH = "/v1beta/models/"


class Invoice(BaseModel):
    """An invoice's header fields."""

    vendor: str
    total: float = Field(ge=0)
    lines: list[str]


def request(custom_id: str = "r1", prompt: str = "Hello", **fields: Any) -> LLMRequest:
    return LLMRequest(custom_id=custom_id, key=custom_id, model=fields.pop("model", MODEL),
                      endpoint=fields.pop("endpoint", Endpoint.CHAT), prompt=prompt, **fields)


@pytest.fixture
def fresh_emulator() -> Iterator[Emulator]:
    """An emulator holding only this test's batches."""
    with Emulator(FAST) as emu:
        yield emu


def connect(emu: Emulator, **options: Any) -> GeminiBatchBackend:
    client = genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=emu.url))
    return GeminiBatchBackend(client, **{"create_retry_delays": (0.01, 0.01, 0.01), **options})


@pytest.fixture
async def backend(fresh_emulator: Emulator) -> AsyncIterator[GeminiBatchBackend]:
    made = connect(fresh_emulator)
    yield made
    await made.aclose()


def write_chunk(backend: GeminiBatchBackend, folder: Path, requests: list[LLMRequest]) -> OpenChunk:
    """A chunk file as the engine writes it (compact JSON, one line per request)."""
    path = folder / f"chunk-{uuid.uuid4().hex[:6]}.jsonl"
    lines = (json.dumps(backend.request_line(r), ensure_ascii=False, separators=(",", ":")) for r in requests)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return functools.partial(path.open, "rb")  # type: ignore[return-value]


def texts(count: int, prefix: str = "row") -> list[LLMRequest]:
    run = uuid.uuid4().hex[:6]
    return [request(f"{prefix}-{run}-{i:04d}", f"text {i} of {run}") for i in range(count)]


async def finish(backend: GeminiBatchBackend, name: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        progress = await backend.progress(name)
        if progress.state.is_terminal:
            return progress
        assert time.monotonic() < deadline, f"batch {name} still {progress.provider_status}"
        await asyncio.sleep(0.02)


async def answers(backend: GeminiBatchBackend, name: str) -> list[RawResult]:
    return [answer async for answer in backend.results(name)]


def gemini_stats(emu: Emulator) -> dict[str, Any]:
    section: dict[str, Any] = emu.stats()["gemini"]
    return section


# -- request translation ---------------------------------------------------------------------------
def test_request_line_carries_key_model_contents_and_system() -> None:
    backend = GeminiBatchBackend.__new__(GeminiBatchBackend)
    line = backend.request_line(request("order 7/é", "Classify this", system_prompt="You triage."))
    assert line == {"key": "order 7/é", "request": {
        "model": f"models/{MODEL}",
        "contents": [{"role": "user", "parts": [{"text": "Classify this"}]}],
        "systemInstruction": {"parts": [{"text": "You triage."}]},
    }}
    assert backend.custom_id_for("any key / at all") == "any key / at all"
    assert backend.request_line(request(model="tunedModels/mine"))["request"]["model"] == "tunedModels/mine"  # type: ignore[index]


def test_params_map_to_generation_config_and_request_fields() -> None:
    backend = GeminiBatchBackend.__new__(GeminiBatchBackend)
    safety = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    params = {"temperature": 0.2, "max_tokens": 128, "stop": "END", "topP": 0.9, "n": 2, "seed": 3,
              "thinking_config": {"thinking_budget": 0}, "safety_settings": safety, "labels": {"team": "a"}}
    body = backend.request_body(request(params=params))
    assert body["generationConfig"] == {"temperature": 0.2, "maxOutputTokens": 128, "stopSequences": ["END"],
                                        "topP": 0.9, "candidateCount": 2, "seed": 3,
                                        "thinkingConfig": {"thinking_budget": 0}}
    assert body["safetySettings"] == safety and body["labels"] == {"team": "a"}


def test_json_schema_goes_to_response_json_schema_unchanged() -> None:
    backend = GeminiBatchBackend.__new__(GeminiBatchBackend)
    schema = Invoice.model_json_schema()
    config = backend.request_body(request(response_schema=schema, params={"temperature": 0}))["generationConfig"]
    assert config == {"temperature": 0, "responseMimeType": "application/json", "responseJsonSchema": schema}
    json_only = backend.request_body(request(json_output=True))["generationConfig"]
    assert json_only == {"responseMimeType": "application/json"}


@pytest.mark.parametrize(("params", "message"), [
    ({"system_instruction": "x"}, "system_prompt"),
    ({"response_schema": {}}, "response_format"),
    ({"routing_config": {}}, "Vertex AI only"),
    ({"logit_bias": {}}, "not a Gemini generateContent parameter"),
    ({"temperature": "hot"}, "temperature"),
    ({"max_tokens": 5, "maxOutputTokens": 6}, "repeats"),
])
def test_bad_params_are_refused_before_anything_is_paid(params: dict[str, Any], message: str) -> None:
    backend = GeminiBatchBackend.__new__(GeminiBatchBackend)
    with pytest.raises(InvalidInputError, match=message):
        backend.request_line(request(params=params))


def test_embeddings_are_refused() -> None:
    backend = GeminiBatchBackend.__new__(GeminiBatchBackend)
    with pytest.raises(InvalidInputError, match="chat_completions"):
        backend.request_line(request(endpoint=Endpoint.EMBEDDINGS))


def test_the_sdk_turns_an_inlined_request_back_into_the_file_line_request() -> None:
    """What goes inline is what a file line holds (checked with google-genai's own converter)."""
    backend = GeminiBatchBackend.__new__(GeminiBatchBackend)
    params = {"temperature": 0.1, "max_output_tokens": 64, "stop_sequences": ["Z"], "tool_config": {
        "function_calling_config": {"mode": "NONE"}}, "cached_content": "cachedContents/abc"}
    line = backend.request_line(request("k-1", "Hi", system_prompt="Sys", params=params,
                                        response_schema=Invoice.model_json_schema()))
    client = genai.Client(api_key="x")
    try:
        converted = sdk_batches._InlinedRequest_to_mldev(  # private: the exact conversion create() runs
            client._api_client, types.InlinedRequest.model_validate(inlined_request(line)))
    finally:
        client.close()
    wire = cast(dict[str, Any], sdk_common.convert_to_dict(converted))
    expected = dict(cast(dict[str, Any], line["request"]))
    assert wire["metadata"] == {"key": "k-1"}
    # nested names come back in the wire's camelCase; the service reads both spellings
    assert wire["request"].pop("toolConfig") == {"functionCallingConfig": {"mode": "NONE"}}
    assert expected.pop("toolConfig") == {"function_calling_config": {"mode": "NONE"}}
    assert wire["request"] == expected


# -- inline or file --------------------------------------------------------------------------------
async def test_small_chunk_goes_inline_and_answers_join_by_key(backend: GeminiBatchBackend,
                                                               fresh_emulator: Emulator, tmp_path: Path) -> None:
    rows = texts(300)
    name = await backend.submit(write_chunk(backend, tmp_path, rows), len(rows), {"llm_batch_tag": "t-inline"})
    progress = await finish(backend, name)
    assert (progress.state, progress.total, progress.completed, progress.failed) == (BatchState.COMPLETED, 300,
                                                                                      300, 0)
    got = await answers(backend, name)
    assert [a.custom_id for a in got] != [r.custom_id for r in rows]  # shuffled by the service
    by_id = {a.custom_id: a for a in got}
    assert len(by_id) == 300
    for row in rows:
        answer = by_id[row.custom_id]
        assert answer.ok and answer.text == row.prompt and answer.finish_reason == "stop" and answer.model == MODEL
        assert answer.usage.input_tokens > 0 and answer.usage.output_tokens > 0
    stats = gemini_stats(fresh_emulator)
    assert stats["files_uploaded"] == 0 and stats["batches_created"] == 1
    assert set(stats["requests_by_custom_id"].values()) == {1}


async def test_chunk_over_the_inline_limit_goes_as_a_file_with_the_same_answers(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    rows = [request(f"f-{i}", f"invoice {i}", system_prompt="Extract.", params={"temperature": 0, "n": 1},
                    response_schema=Invoice.model_json_schema()) for i in range(120)]
    inline = connect(fresh_emulator)
    by_file = connect(fresh_emulator, inline_max_bytes=10_000)  # the chunk is ~60 kB
    try:
        chunk = write_chunk(inline, tmp_path, rows)
        inline_name = await inline.submit(chunk, len(rows), {"llm_batch_tag": "t-a"})
        assert gemini_stats(fresh_emulator)["files_uploaded"] == 0
        file_name = await by_file.submit(chunk, len(rows), {"llm_batch_tag": "t-b"})
        assert gemini_stats(fresh_emulator)["files_uploaded"] == 1
        await finish(inline, inline_name)
        await finish(by_file, file_name)
        from_inline = {a.custom_id: a for a in await answers(inline, inline_name)}
        from_file = {a.custom_id: a for a in await answers(by_file, file_name)}
    finally:
        await inline.aclose()
        await by_file.aclose()
    assert from_inline == from_file and len(from_file) == 120
    assert all(Invoice.model_validate_json(a.text or "").vendor == f"invoice {a.custom_id[2:]}"
               for a in from_file.values())


async def test_inline_size_is_measured_as_the_sdk_sends_it(fresh_emulator: Emulator, tmp_path: Path) -> None:
    """Non-ASCII text is escaped by google-genai (``\\u00e9``: 6 bytes, not 2): a chunk small in UTF-8 may
    be too big inline; it then goes as a file instead of being refused."""
    rows = [request(f"u-{i}", "é" * 1000) for i in range(20)]
    probe = connect(fresh_emulator)
    lines = [probe.request_line(r) for r in rows]
    compact = sum(len(json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode()) + 1 for line in lines)
    estimated = inline_body_size(lines)
    assert estimated > 2.5 * compact
    backend = connect(fresh_emulator, inline_max_bytes=(compact + estimated) // 2)
    try:
        name = await backend.submit(write_chunk(backend, tmp_path, rows), 20, {"llm_batch_tag": "t-utf8"})
        await finish(backend, name)
        assert gemini_stats(fresh_emulator)["files_uploaded"] == 1
        assert {a.custom_id: a.text for a in await answers(backend, name)} == {r.custom_id: r.prompt for r in rows}
    finally:
        await probe.aclose()
        await backend.aclose()


async def test_chunk_count_mismatch_submits_nothing(backend: GeminiBatchBackend, fresh_emulator: Emulator,
                                                   tmp_path: Path) -> None:
    with pytest.raises(Exception, match="expected 5"):
        await backend.submit(write_chunk(backend, tmp_path, texts(3)), 5, {"llm_batch_tag": "t"})
    assert gemini_stats(fresh_emulator)["batches_created"] == 0


# -- per-row outcomes ------------------------------------------------------------------------------
async def test_row_errors_in_a_succeeded_batch_map_to_neutral_codes(backend: GeminiBatchBackend,
                                                                   tmp_path: Path) -> None:
    markers = {"bad-arg": "[[emulator:error:invalid_request_error]]", "bad-500": "[[emulator:error:server_error]]",
               "bad-429": "[[emulator:error:rate_limit_exceeded]]", "bad-401": "[[emulator:error:UNAUTHENTICATED]]",
               "cut": "cut me in half please [[emulator:truncate]]", "ok": "fine"}
    rows = [request(key, text) for key, text in markers.items()]
    name = await backend.submit(write_chunk(backend, tmp_path, rows), len(rows), {"llm_batch_tag": "t-err"})
    progress = await finish(backend, name)
    assert progress.state == BatchState.COMPLETED and progress.provider_status == "BATCH_STATE_SUCCEEDED"
    assert (progress.completed, progress.failed) == (2, 4)
    got = {a.custom_id: a for a in await answers(backend, name)}
    assert {k: got[k].error_code for k in ("bad-arg", "bad-500", "bad-429", "bad-401")} == {
        "bad-arg": "invalid_request_error", "bad-500": "server_error", "bad-429": "rate_limit_exceeded",
        "bad-401": "authentication_error"}
    assert not any(got[k].ok for k in ("bad-arg", "bad-500", "bad-429", "bad-401"))
    assert got["cut"].ok and got["cut"].finish_reason == "length" and got["ok"].text == "fine"


def test_decoding_refusals_blocks_thoughts_and_error_shapes() -> None:
    thought = {"response": {"candidates": [{"content": {"parts": [{"text": "hmm", "thought": True}, {"text": "4"}]},
                                            "finishReason": "STOP"}],
                            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 1,
                                              "thoughtsTokenCount": 30, "cachedContentTokenCount": "4"},
                            "modelVersion": "gemini-2.5-pro"}}
    answer = decode_answer("a", thought)
    assert answer.ok and answer.text == "4" and answer.model == "gemini-2.5-pro"
    assert (answer.usage.input_tokens, answer.usage.output_tokens, answer.usage.cached_input_tokens) == (10, 31, 4)
    safety = decode_answer("b", {"response": {"candidates": [{"content": {"parts": []}, "finishReason": "SAFETY"}]}})
    assert not safety.ok and safety.error_code == "content_filter" and "SAFETY" in (safety.error_message or "")
    blocked = decode_answer("c", {"response": {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}})
    assert not blocked.ok and blocked.error_code == "prompt_blocked"
    assert decode_answer("d", {"error": {"code": 14, "message": "busy"}}).error_code == "service_unavailable"
    assert decode_answer("e", {"status": {"code": 429, "message": "slow down"}}).error_code == "rate_limit_exceeded"
    assert decode_answer("f", {"error": {"status": "DEADLINE_EXCEEDED", "message": "late"}}).error_code == "timeout"
    other = decode_answer("g", {"response": {"candidates": [{"content": {"parts": [{"text": "x"}]},
                                                             "finishReason": "OTHER"}]}})
    assert other.ok and other.finish_reason == "other"


@pytest.fixture
def keyless_emulator(fresh_emulator: Emulator) -> Emulator:
    """Inline responses come back without their metadata (python-genai#2008)."""
    httpx.post(f"{fresh_emulator.url}/_emulator/gemini/quirks", json={"inline_metadata": False}).raise_for_status()
    return fresh_emulator


async def test_unjoinable_inline_answers_are_never_guessed_and_retried_as_a_file(
    keyless_emulator: Emulator, tmp_path: Path
) -> None:
    """Rows whose inline answer has no key end missing_result (retryable), the retry goes as a file
    whose lines carry the key, and every row ends answered with its own text."""
    fresh_emulator = keyless_emulator
    backend = connect(fresh_emulator)
    rows = [{"id": f"q-{i:03d}", "text": f"quirk {i}"} for i in range(40)]
    spec = RequestSpec(model=MODEL, prompt="{{ row.text }}", key="id")
    run = BatchRun(cast(StoragePath, tmp_path), backend, tags={"dag_id": "d", "task_id": "t", "run_id": "r"})
    try:
        manifest = run.prepare_or_load(lambda: rows, spec)
        for _ in range(5):
            await run.submit(manifest)
            while manifest.open_batch_ids:
                await run.poll(manifest)
                await asyncio.sleep(0.02)
            await run.collect(manifest, OutputParser())
            if all(chunk.state == ChunkState.COLLECTED for chunk in manifest.chunks):
                break
        results = list(run.iter_results(manifest))
    finally:
        await backend.aclose()
    assert backend.inline_unjoinable
    assert [r.key for r in results] == [row["id"] for row in rows]
    assert all(r.status == RowStatus.SUCCEEDED and r.attempts == 2 for r in results)
    assert all(r.output == row["text"] for r, row in zip(results, rows, strict=True))
    stats = gemini_stats(fresh_emulator)
    assert stats["batches_created"] == 2 and stats["files_uploaded"] == 1


# -- states ----------------------------------------------------------------------------------------
async def test_states_move_pending_running_completed(tmp_path: Path) -> None:
    with Emulator(FAST.replace(validating_seconds=0.2, requests_per_second=500.0)) as emu:
        backend = connect(emu)
        try:
            name = await backend.submit(write_chunk(backend, tmp_path, texts(200)), 200, {"llm_batch_tag": "t-s"})
            seen = [(await backend.progress(name)).state]
            while not seen[-1].is_terminal:
                await asyncio.sleep(0.05)
                seen.append((await backend.progress(name)).state)
        finally:
            await backend.aclose()
    assert seen[0] == BatchState.PENDING and BatchState.RUNNING in seen and seen[-1] == BatchState.COMPLETED


async def test_a_failed_batch_reports_its_error(fresh_emulator: Emulator, tmp_path: Path) -> None:
    backend = connect(fresh_emulator, inline_max_bytes=0)
    path = tmp_path / "broken.jsonl"
    good = json.dumps(backend.request_line(request("ok", "fine")))
    path.write_text(good + "\n" + '{"key": "bad", "request": "not an object"}\n')
    try:
        name = await backend.submit(functools.partial(path.open, "rb"), 2, {"llm_batch_tag": "t-f"})  # type: ignore[arg-type]
        progress = await finish(backend, name)
        assert progress.state == BatchState.FAILED and progress.errors[0]["code"] == "invalid_request_error"
        assert "line 2" in progress.errors[0]["message"]
        assert await answers(backend, name) == []
    finally:
        await backend.aclose()


async def test_expired_batch_has_no_answers_and_cancelled_keeps_answered_rows(tmp_path: Path) -> None:
    with Emulator(FAST.replace(requests_per_second=100.0, expire_after_seconds=0.3)) as emu:
        backend = connect(emu)
        try:
            expiring = await backend.submit(write_chunk(backend, tmp_path, texts(100)), 100, {"llm_batch_tag": "e"})
            assert (await finish(backend, expiring)).state == BatchState.EXPIRED
            assert await answers(backend, expiring) == []
        finally:
            await backend.aclose()
    with Emulator(FAST.replace(requests_per_second=100.0)) as emu:
        backend = connect(emu)
        try:
            rows = texts(100)
            cancelled = await backend.submit(write_chunk(backend, tmp_path, rows), 100, {"llm_batch_tag": "c"})
            await asyncio.sleep(0.3)
            await backend.cancel(cancelled)
            assert (await finish(backend, cancelled)).state == BatchState.CANCELLED
            got = await answers(backend, cancelled)
            assert 0 < len(got) < 100 and all(a.ok for a in got)
            await backend.cancel(cancelled)  # nothing left to stop: tolerated
        finally:
            await backend.aclose()


async def test_unknown_batch_is_a_provider_error_with_its_status(backend: GeminiBatchBackend) -> None:
    with pytest.raises(ProviderError) as unknown:
        await backend.progress("batches/doesnotexist")
    assert getattr(unknown.value, "status_code", None) == 404
    with pytest.raises(ProviderError, match="not a Gemini batch name"):
        await backend.progress("batch_123")


# -- creating: failures, retries, re-attach --------------------------------------------------------
async def test_refused_create_is_a_provider_error_without_the_key(fresh_emulator: Emulator,
                                                                  tmp_path: Path) -> None:
    fresh_emulator.inject_fault(400, path_prefix=CREATE_PATH, message="Model is not supported for batch.")
    backend = connect(fresh_emulator)
    try:
        with pytest.raises(ProviderError, match="Model is not supported") as refused:
            await backend.submit(write_chunk(backend, tmp_path, texts(3)), 3, {"llm_batch_tag": "t-400"})
    finally:
        await backend.aclose()
    assert "test-key" not in str(refused.value)
    assert gemini_stats(fresh_emulator)["batches_created"] == 0


@pytest.mark.parametrize(("status", "lose_response"), [(429, False), (500, False), (503, True)])
async def test_transient_create_failures_create_exactly_one_batch(
    fresh_emulator: Emulator, tmp_path: Path, status: int, lose_response: bool
) -> None:
    """A 503 whose batch was in fact created (the answer was lost) is found by its tag, not created twice."""
    fresh_emulator.inject_fault(status, path_prefix=CREATE_PATH, lose_response=lose_response)
    backend = connect(fresh_emulator)
    rows = texts(10)
    try:
        name = await backend.submit(write_chunk(backend, tmp_path, rows), 10, {"llm_batch_tag": f"t-{status}"})
        await finish(backend, name)
        assert len(await answers(backend, name)) == 10
    finally:
        await backend.aclose()
    stats = gemini_stats(fresh_emulator)
    assert stats["batches"] == [name] and set(stats["requests_by_custom_id"].values()) == {1}


async def test_unreachable_endpoint_is_a_provider_error(tmp_path: Path) -> None:
    with Emulator(FAST) as emu:
        url = emu.url
    client = genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=url))
    backend = GeminiBatchBackend(client, create_retry_delays=(0.01,))
    try:
        with pytest.raises(ProviderError, match="cannot reach"):
            await backend.submit(write_chunk(backend, tmp_path, texts(2)), 2, {"llm_batch_tag": "t-down"})
    finally:
        await backend.aclose()


async def test_find_matches_the_display_name_exactly(backend: GeminiBatchBackend, tmp_path: Path) -> None:
    started = time.time()
    first = await backend.submit(write_chunk(backend, tmp_path, texts(2)), 2, {"llm_batch_tag": "llmb-x-00000"})
    second = await backend.submit(write_chunk(backend, tmp_path, texts(2)), 2, {"llm_batch_tag": "llmb-x-00001"})
    assert await backend.find("llmb-x-00000", started - 5) == [first]
    assert await backend.find("llmb-x-00001", started - 5, FindHints(count=2, exclude=[second])) == []
    assert await backend.find("llmb-x-00001", time.time() + 60) == []
    assert await backend.find("llmb-x", started - 5) == []
