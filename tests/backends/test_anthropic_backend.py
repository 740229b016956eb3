"""AnthropicBatchBackend: request translation, custom_id mapping, result decoding, state mapping,
create failures and re-attach matching, with the official SDK against the bundled emulator."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic import AsyncAnthropic
from pydantic import BaseModel, Field

from airflow_llm_batch.backends.anthropic import DEFAULT_MAX_TOKENS, AnthropicBatchBackend
from airflow_llm_batch.emulator import Emulator, EmulatorConfig
from airflow_llm_batch.exceptions import InvalidInputError, ProviderError
from airflow_llm_batch.pipeline.backend import FindHints
from airflow_llm_batch.pipeline.prepare import prepare
from airflow_llm_batch.pipeline.render import RequestSpec
from airflow_llm_batch.pipeline.types import BatchState, Endpoint, LLMRequest, RawResult

ANTHROPIC_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
FAST = EmulatorConfig(validating_seconds=0.02, requests_per_second=20_000.0, finalizing_seconds=0.02,
                      cancelling_seconds=0.02)
BATCHES = "/v1/messages/batches"


class Invoice(BaseModel):
    """An invoice's header fields."""

    vendor: str
    total: float = Field(ge=0)


def request(custom_id: str = "r1", prompt: str = "Hello", **fields: Any) -> LLMRequest:
    return LLMRequest(custom_id=custom_id, key=custom_id, model=fields.pop("model", "claude-haiku-4-5"),
                      endpoint=fields.pop("endpoint", Endpoint.CHAT), prompt=prompt, **fields)


@pytest.fixture
def fresh_emulator() -> Iterator[Emulator]:
    """An emulator holding only this test's batches."""
    with Emulator(FAST) as emu:
        yield emu


@pytest.fixture
async def backend(fresh_emulator: Emulator) -> AsyncIterator[AnthropicBatchBackend]:
    made = connect(fresh_emulator)
    yield made
    await made.aclose()


def connect(emu: Emulator, **client: Any) -> AnthropicBatchBackend:
    options = {"base_url": emu.anthropic_base_url, "api_key": "test-key", "max_retries": 0, **client}
    return AnthropicBatchBackend(AsyncAnthropic(**options), create_retry_delays=(0.01, 0.01, 0.01))


def chunk_file(tmp_path: Path, backend: AnthropicBatchBackend, requests: list[LLMRequest]) -> Path:
    path = tmp_path / f"chunk-{uuid.uuid4().hex[:6]}.jsonl"
    path.write_text("".join(json.dumps(backend.request_line(r), ensure_ascii=False) + "\n" for r in requests))
    return path


async def submit(backend: AnthropicBatchBackend, path: Path) -> str:
    with path.open("rb") as fh:
        count = sum(1 for _ in fh)
    return await backend.submit(lambda: path.open("rb"), count, {"llm_batch_tag": "t-1", "chunk": "00000"})


async def wait_ended(backend: AnthropicBatchBackend, batch_id: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while (progress := await backend.progress(batch_id)).state in (BatchState.RUNNING, BatchState.CANCELLING):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    return progress


async def answers(backend: AnthropicBatchBackend, batch_id: str) -> dict[str, RawResult]:
    return {a.custom_id: a async for a in backend.results(batch_id)}


# -- request translation ---------------------------------------------------------------------------
def test_plain_request_becomes_messages_params() -> None:
    backend = AnthropicBatchBackend.__new__(AnthropicBatchBackend)
    line = backend.request_line(request(system_prompt="You are terse."))
    assert line == {"custom_id": "r1", "params": {
        "model": "claude-haiku-4-5", "max_tokens": DEFAULT_MAX_TOKENS, "system": "You are terse.",
        "messages": [{"role": "user", "content": "Hello"}]}}


def test_params_pass_through_and_max_tokens_is_taken_from_them() -> None:
    backend = AnthropicBatchBackend.__new__(AnthropicBatchBackend)
    params = {"max_tokens": 77, "temperature": 0.1, "top_p": 0.9, "stop_sequences": ["END"],
              "metadata": {"user_id": "u-1"}}
    body = backend.request_params(request(params=params))
    assert body["max_tokens"] == 77 and "system" not in body
    assert {k: body[k] for k in ("temperature", "top_p", "stop_sequences", "metadata")} == {
        "temperature": 0.1, "top_p": 0.9, "stop_sequences": ["END"], "metadata": {"user_id": "u-1"}}


def test_schema_becomes_a_forced_tool() -> None:
    backend = AnthropicBatchBackend.__new__(AnthropicBatchBackend)
    schema = Invoice.model_json_schema()
    body = backend.request_params(request(response_schema=schema, schema_name="Invoice"))
    (tool,) = body["tools"]
    assert tool["name"] == "Invoice" and tool["input_schema"] == schema
    assert "An invoice's header fields." in tool["description"]
    assert body["tool_choice"] == {"type": "tool", "name": "Invoice"}


def test_tool_names_are_made_safe_and_non_object_schemas_refused() -> None:
    backend = AnthropicBatchBackend.__new__(AnthropicBatchBackend)
    body = backend.request_params(request(response_schema={"type": "object", "properties": {}},
                                          schema_name="my schema.v2"))
    assert body["tool_choice"]["name"] == "my_schema_v2"
    with pytest.raises(InvalidInputError, match="object"):
        backend.request_params(request(response_schema={"type": "array", "items": {}}))


def test_cache_system_prompt_marks_the_system_block_and_is_not_sent() -> None:
    backend = AnthropicBatchBackend.__new__(AnthropicBatchBackend)
    body = backend.request_params(request(system_prompt="Long rules", params={"cache_system_prompt": True}))
    assert body["system"] == [{"type": "text", "text": "Long rules", "cache_control": {"type": "ephemeral"}}]
    assert "cache_system_prompt" not in body


def test_json_without_schema_is_asked_for_in_the_system_prompt() -> None:
    backend = AnthropicBatchBackend.__new__(AnthropicBatchBackend)
    body = backend.request_params(request(system_prompt="Extract.", json_output=True))
    assert body["system"].startswith("Extract.\n\n") and "JSON" in body["system"]
    assert "JSON" in backend.request_params(request(json_output=True))["system"]


@pytest.mark.parametrize(("params", "fields", "message"), [
    ({"max_completion_tokens": 5}, {}, "max_tokens"),
    ({"stop": ["x"]}, {}, "stop_sequences"),
    ({"thinking": {"type": "enabled", "budget_tokens": 2000}}, {"response_schema": {"type": "object"}},
     "thinking"),
    ({}, {"endpoint": Endpoint.EMBEDDINGS}, "messages"),
])
def test_requests_anthropic_would_reject_fail_before_payment(params: dict[str, Any], fields: dict[str, Any],
                                                             message: str) -> None:
    backend = AnthropicBatchBackend.__new__(AnthropicBatchBackend)
    with pytest.raises(InvalidInputError, match=message):
        backend.request_params(request(params=params, **fields))


# -- custom_id mapping -----------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["t-1", "A_b-9", "x" * 64])
def test_safe_keys_are_their_own_custom_id(key: str) -> None:
    assert AnthropicBatchBackend.__new__(AnthropicBatchBackend).custom_id_for(key) == key


@pytest.mark.parametrize("key", ["order 42", "facture-é", "ключ", "x" * 65, "y" * 100, "abc\n", "a/b", ""])
def test_unsafe_keys_get_a_stable_safe_custom_id(key: str) -> None:
    backend = AnthropicBatchBackend.__new__(AnthropicBatchBackend)
    custom_id = backend.custom_id_for(key)
    assert ANTHROPIC_ID.fullmatch(custom_id) and custom_id != key
    assert custom_id == backend.custom_id_for(key) and custom_id != backend.custom_id_for(key + " ")


def test_two_keys_mapped_to_one_custom_id_are_both_named(tmp_path: Path) -> None:
    backend = AnthropicBatchBackend.__new__(AnthropicBatchBackend)
    substitute = backend.custom_id_for("order 42")  # a key Anthropic refuses gets a safe substitute...
    rows = [{"id": "order 42", "text": "a"}, {"id": "ok-1", "text": "b"}, {"id": substitute, "text": "c"}]
    spec = RequestSpec(model="claude-haiku-4-5", prompt="{{ row.text }}", key="id")
    with pytest.raises(InvalidInputError) as caught:  # ...that another row uses as its own key
        prepare(rows, spec, folder=tmp_path, backend=backend)
    message = str(caught.value)
    assert f"keys '{substitute}', 'order 42' (rows 0, 2) map to the same provider custom_id" in message


# -- against the emulator --------------------------------------------------------------------------
async def test_text_tool_and_errored_answers_decode(backend: AnthropicBatchBackend, fresh_emulator: Emulator,
                                                    tmp_path: Path) -> None:
    schema = Invoice.model_json_schema()
    path = chunk_file(tmp_path, backend, [
        request("text", "Say this back", system_prompt="Echo."),
        request("tool", "ACME 12.50", response_schema=schema, schema_name="Invoice"),
        request("bad", "x [[emulator:error:overloaded_error]]"),
        request("other-model", "from another model", model="claude-sonnet-4-5"),
    ])
    batch_id = await submit(backend, path)
    assert (await wait_ended(backend, batch_id)).state == BatchState.COMPLETED
    got = await answers(backend, batch_id)
    assert got["text"].ok and got["text"].text == "Say this back" and got["text"].finish_reason == "stop"
    assert got["text"].model == "claude-haiku-4-5" and got["other-model"].model == "claude-sonnet-4-5"
    invoice = Invoice.model_validate_json(got["tool"].text or "")
    assert invoice.vendor == "ACME 12.50" and got["tool"].finish_reason == "tool_use"
    assert got["bad"] == RawResult("bad", ok=False, error_code="overloaded_error",
                                   error_message=got["bad"].error_message)
    assert all(a.usage.input_tokens > 0 and a.usage.output_tokens > 0 for a in got.values() if a.ok)


async def test_cached_system_prompt_tokens_are_counted(backend: AnthropicBatchBackend,
                                                      fresh_emulator: Emulator, tmp_path: Path) -> None:
    rules = "Follow these extraction rules carefully. " * 40
    path = chunk_file(tmp_path, backend, [request(f"c{i}", f"doc {i}", system_prompt=rules,
                                                  params={"cache_system_prompt": True}) for i in range(5)])
    batch_id = await submit(backend, path)
    await wait_ended(backend, batch_id)
    raw = {}
    async with anthropic.AsyncAnthropic(base_url=fresh_emulator.anthropic_base_url, api_key="k") as client:
        async for line in await client.messages.batches.results(batch_id):
            raw[line.custom_id] = line.result.message.usage  # type: ignore[union-attr]
    got = await answers(backend, batch_id)
    for custom_id, usage in raw.items():
        written, read = usage.cache_creation_input_tokens or 0, usage.cache_read_input_tokens or 0
        assert got[custom_id].usage.input_tokens == usage.input_tokens + written + read
        assert got[custom_id].usage.cached_input_tokens == read
    assert sorted(a.usage.cached_input_tokens > 0 for a in got.values()) == [False] + [True] * 4


async def test_progress_maps_running_completed_and_counts(tmp_path: Path) -> None:
    slow = Emulator(FAST.replace(requests_per_second=50.0))
    slow.start()
    try:
        client = connect(slow)
        path = chunk_file(tmp_path, client, [request(f"p{i}", f"row {i}") for i in range(10)]
                          + [request("e", "[[emulator:error:api_error]]")])
        batch_id = await submit(client, path)
        running = await client.progress(batch_id)
        assert (running.state, running.provider_status, running.total) == (BatchState.RUNNING, "in_progress",
                                                                           11)
        ended = await wait_ended(client, batch_id)
        assert (ended.state, ended.total, ended.completed, ended.failed) == (BatchState.COMPLETED, 11, 10, 1)
        await client.cancel(batch_id)  # ended: nothing to stop, no error
        await client.aclose()
    finally:
        slow.stop()


async def test_cancelled_batch_is_cancelled_and_unanswered_rows_say_so(tmp_path: Path) -> None:
    slow = Emulator(FAST.replace(requests_per_second=20.0, cancelling_seconds=0.2))
    slow.start()
    try:
        client = connect(slow)
        path = chunk_file(tmp_path, client, [request(f"k{i}", f"row {i}") for i in range(40)])
        batch_id = await submit(client, path)
        await asyncio.sleep(0.3)
        await client.cancel(batch_id)
        assert (await client.progress(batch_id)).state == BatchState.CANCELLING
        ended = await wait_ended(client, batch_id)
        got = await answers(client, batch_id)
        await client.aclose()
    finally:
        slow.stop()
    assert ended.state == BatchState.CANCELLED and len(got) == 40
    cancelled = [a for a in got.values() if not a.ok]
    assert cancelled and all(a.error_code == "batch_cancelled" for a in cancelled)
    assert ended.completed == 40 - len(cancelled)


async def test_expired_batch_is_expired_and_unanswered_rows_say_so(tmp_path: Path) -> None:
    slow = Emulator(FAST.replace(requests_per_second=20.0, expire_after_seconds=0.3))
    slow.start()
    try:
        client = connect(slow)
        path = chunk_file(tmp_path, client, [request(f"x{i}", f"row {i}") for i in range(40)])
        batch_id = await submit(client, path)
        ended = await wait_ended(client, batch_id)
        got = await answers(client, batch_id)
        await client.aclose()
    finally:
        slow.stop()
    assert ended.state == BatchState.EXPIRED
    expired = [a for a in got.values() if not a.ok]
    assert expired and all(a.error_code == "batch_expired" for a in expired) and len(got) == 40


# -- create failures -------------------------------------------------------------------------------
async def test_refused_create_is_a_provider_error_without_the_key(tmp_path: Path) -> None:
    guarded = Emulator(FAST.replace(api_key="the-right-key"))
    guarded.start()
    try:
        client = AnthropicBatchBackend(AsyncAnthropic(base_url=guarded.anthropic_base_url,
                                                      api_key="sk-wrong-secret", max_retries=0))
        path = chunk_file(tmp_path, client, [request()])
        with pytest.raises(ProviderError, match=r"\(401\): Invalid API key") as caught:
            await submit(client, path)
        await client.aclose()
        assert "sk-wrong-secret" not in str(caught.value)
        assert guarded.stats()["anthropic"]["batches_created"] == 0
    finally:
        guarded.stop()


async def test_invalid_batch_is_a_provider_error_not_retried(
    backend: AnthropicBatchBackend, fresh_emulator: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"custom_id": "has space", "params": {"model": "m", "max_tokens": 5,
                                "messages": [{"role": "user", "content": "x"}]}}) + "\n")
    with pytest.raises(ProviderError, match=r"\(400\).*custom_id"):
        await submit(backend, path)
    assert fresh_emulator.stats()["anthropic"]["batches_created"] == 0


@pytest.mark.parametrize("status", [429, 529, 500, 503])
async def test_transient_create_failures_are_tried_again_once_created(
    backend: AnthropicBatchBackend, fresh_emulator: Emulator, tmp_path: Path, status: int
) -> None:
    fresh_emulator.inject_fault(status, count=2, path_prefix=BATCHES, method="POST")
    batch_id = await submit(backend, chunk_file(tmp_path, backend, [request()]))
    assert fresh_emulator.stats()["anthropic"]["batches"] == [batch_id]


async def test_a_create_that_landed_but_lost_its_answer_is_found_not_repeated(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    class LoseFirstCreateAnswer(httpx2.AsyncHTTPTransport):
        """The request reaches the service (the batch is created); the answer is lost on the way back."""

        lost = 0

        async def handle_async_request(self, req: httpx2.Request) -> httpx2.Response:
            response = await super().handle_async_request(req)
            if req.method == "POST" and req.url.path == BATCHES and not self.lost:
                self.lost += 1
                await response.aclose()
                raise httpx2.ReadError("connection reset", request=req)
            return response

    http = httpx2.AsyncClient(transport=LoseFirstCreateAnswer())
    backend = connect(fresh_emulator, http_client=http)
    try:
        batch_id = await submit(backend, chunk_file(tmp_path, backend, [request(f"l{i}") for i in range(3)]))
    finally:
        await backend.aclose()
    assert fresh_emulator.stats()["anthropic"]["batches"] == [batch_id]


async def test_unreachable_endpoint_is_a_provider_error(tmp_path: Path) -> None:
    backend = AnthropicBatchBackend(AsyncAnthropic(base_url="http://127.0.0.1:9", api_key="k", max_retries=0),
                                    create_retry_delays=())
    try:
        with pytest.raises(ProviderError, match=r"cannot reach the Anthropic endpoint http://127\.0\.0\.1:9"):
            await submit(backend, chunk_file(tmp_path, backend, [request()]))
    finally:
        await backend.aclose()


# -- re-attach matching ----------------------------------------------------------------------------
async def test_find_narrows_by_window_count_exclusion_and_ids(backend: AnthropicBatchBackend,
                                                              tmp_path: Path) -> None:
    start = time.time()
    ours = await submit(backend, chunk_file(tmp_path, backend, [request(f"a{i}") for i in range(3)]))
    same_size = await submit(backend, chunk_file(tmp_path, backend, [request(f"b{i}") for i in range(3)]))
    other_size = await submit(backend, chunk_file(tmp_path, backend, [request(f"c{i}") for i in range(4)]))
    for batch_id in (ours, same_size, other_size):
        await wait_ended(backend, batch_id)
    assert set(await backend.find("t", start - 5)) == {ours, same_size, other_size}
    assert await backend.find("t", time.time() + 5) == []
    assert set(await backend.find("t", start - 5, FindHints(count=3))) == {ours, same_size}
    assert await backend.find("t", start - 5, FindHints(count=3, exclude=[same_size])) == [ours]
    assert await backend.find("t", start - 5, FindHints(count=3, first_custom_id="a0")) == [ours]
    assert await backend.find("t", start - 5, FindHints(count=3, first_custom_id="zz")) == []


async def test_find_keeps_a_batch_still_processing_it_cannot_check(tmp_path: Path) -> None:
    slow = Emulator(FAST.replace(requests_per_second=5.0))
    slow.start()
    try:
        backend = connect(slow)
        running = await submit(backend, chunk_file(tmp_path, backend, [request(f"r{i}") for i in range(20)]))
        assert await backend.find("t", time.time() - 60, FindHints(count=20, first_custom_id="not-in-it")) == [running]
        await backend.cancel(running)
        await backend.aclose()
    finally:
        slow.stop()


async def test_find_pages_through_more_than_one_page(backend: AnthropicBatchBackend, tmp_path: Path) -> None:
    start = time.time()
    path = chunk_file(tmp_path, backend, [request("p")])
    created = [await submit(backend, path) for _ in range(105)]
    assert set(await backend.find("t", start - 5)) == set(created)
