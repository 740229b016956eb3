"""The official anthropic SDK (sync and async), unchanged, against the emulated Message Batches API."""

from __future__ import annotations

import enum
import json
import time
from typing import Any

import anthropic
import httpx
import pytest
from pydantic import BaseModel, Field

from airflow_llm_batch.emulator import Emulator, EmulatorConfig


class Priority(str, enum.Enum):
    LOW = "low"
    HIGH = "high"


class Owner(BaseModel):
    team: str = Field(max_length=8)


class Ticket(BaseModel):
    priority: Priority
    effort: int = Field(ge=1, le=13)
    owner: Owner


def request(custom_id: str, text: str, **params: Any) -> Any:
    return {
        "custom_id": custom_id,
        "params": {
            "model": "claude-sonnet-4-5",
            "max_tokens": 256,
            "messages": [{"role": "user", "content": text}],
            **params,
        },
    }


def results_by_id(client: anthropic.Anthropic, batch_id: str) -> dict[str, Any]:
    return {item.custom_id: item.result for item in client.messages.batches.results(batch_id)}


def test_create_retrieve_results_round_trip(claude: anthropic.Anthropic, h: Any) -> None:
    created = claude.messages.batches.create(requests=[request(f"row-{i}", f"hello {i}") for i in range(20)])
    assert created.id.startswith("msgbatch_") and created.type == "message_batch"
    assert created.processing_status == "in_progress"
    assert created.request_counts.processing == 20 and created.request_counts.succeeded == 0
    assert created.results_url is None and created.ended_at is None
    assert (created.expires_at - created.created_at).total_seconds() == pytest.approx(24 * 3600, abs=1)
    ended = h.wait_anthropic(claude, created.id)
    assert ended.processing_status == "ended" and ended.ended_at is not None
    assert ended.request_counts.processing == 0 and ended.request_counts.succeeded == 20
    assert (
        ended.results_url == f"{claude.base_url}".rstrip("/") + f"/v1/messages/batches/{created.id}/results"
    )
    items = list(claude.messages.batches.results(created.id))
    assert [i.custom_id for i in items] != [f"row-{i}" for i in range(20)]  # not input order
    results: dict[str, Any] = {i.custom_id: i.result for i in items}
    assert set(results) == {f"row-{i}" for i in range(20)}
    message = results["row-7"].message
    assert message.type == "message" and message.role == "assistant" and message.model == "claude-sonnet-4-5"
    assert message.content[0].text == "hello 7"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert message.usage.cache_creation_input_tokens == 0 and message.usage.cache_read_input_tokens == 0


def test_forced_tool_answers_validate(claude: anthropic.Anthropic, h: Any) -> None:
    tool = {
        "name": "record_ticket",
        "description": "Record a ticket",
        "input_schema": Ticket.model_json_schema(),
    }
    requests = [
        request(f"t{i}", f"ticket {i}", tools=[tool], tool_choice={"type": "tool", "name": "record_ticket"})
        for i in range(20)
    ]
    requests.append(request("any", "whatever", tools=[tool], tool_choice={"type": "any"}))
    requests.append(request("auto", "plain", tools=[tool], tool_choice={"type": "auto"}))
    requests.append(
        request(
            "format",
            "formatted",
            output_config={"format": {"type": "json_schema", "schema": Ticket.model_json_schema()}},
        )
    )
    batch = claude.messages.batches.create(requests=requests)
    h.wait_anthropic(claude, batch.id)
    results = results_by_id(claude, batch.id)
    tickets = []
    for i in range(20):
        message = results[f"t{i}"].message
        assert message.stop_reason == "tool_use"
        block = message.content[0]
        assert block.type == "tool_use" and block.name == "record_ticket" and block.id.startswith("toolu_")
        tickets.append(Ticket.model_validate(block.input))
    assert {t.priority for t in tickets} == set(Priority)
    assert tickets[2].owner.team == "ticket 2"[:8]
    assert results["any"].message.content[0].type == "tool_use"
    assert results["auto"].message.content[0].text == "plain"
    Ticket.model_validate_json(results["format"].message.content[0].text)


def test_error_and_truncate_markers(claude: anthropic.Anthropic, h: Any) -> None:
    batch = claude.messages.batches.create(
        requests=[
            request("fine", "fine"),
            request("overloaded", "[[emulator:error:overloaded_error]]"),
            request("invalid", "bad [[emulator:error:invalid_request_error]]"),
            request("cut", "0123456789 [[emulator:truncate]]"),
        ]
    )
    ended = h.wait_anthropic(claude, batch.id)
    assert ended.request_counts.succeeded == 2 and ended.request_counts.errored == 2
    results = results_by_id(claude, batch.id)
    assert results["overloaded"].type == "errored"
    assert results["overloaded"].error.type == "error"
    assert results["overloaded"].error.error.type == "overloaded_error"
    assert results["invalid"].error.error.type == "invalid_request_error"
    cut = results["cut"].message
    text = "0123456789 [[emulator:truncate]]"
    assert cut.stop_reason == "max_tokens" and cut.content[0].text == text[: len(text) // 2]


def test_prompt_caching_reports_creation_then_reads(claude: anthropic.Anthropic, h: Any) -> None:
    system = [
        {"type": "text", "text": "You are a careful assistant. " * 20, "cache_control": {"type": "ephemeral"}}
    ]
    batch = claude.messages.batches.create(
        requests=[request(f"c{i}", f"question {i}", system=system) for i in range(5)]
        + [request("nocache", "q")]
    )
    h.wait_anthropic(claude, batch.id)
    results = results_by_id(claude, batch.id)
    usage = {cid: results[cid].message.usage for cid in results}
    assert usage["c0"].cache_creation_input_tokens > 0 and usage["c0"].cache_read_input_tokens == 0
    for cid in ("c1", "c2", "c3", "c4"):
        assert usage[cid].cache_creation_input_tokens == 0
        assert usage[cid].cache_read_input_tokens == usage["c0"].cache_creation_input_tokens
        assert usage[cid].input_tokens == usage["c0"].input_tokens
    assert usage["nocache"].cache_creation_input_tokens == 0 and usage["nocache"].cache_read_input_tokens == 0


@pytest.mark.parametrize(
    ("requests", "fragment"),
    [
        pytest.param([request("bad id!", "x")], "custom_id", id="custom-id-pattern"),
        pytest.param([request("x" * 65, "x")], "custom_id", id="custom-id-too-long"),
        pytest.param([request("same", "x"), request("same", "y")], "Duplicate", id="duplicate"),
        pytest.param(
            [{"custom_id": "a", "params": {"model": "m", "messages": [{"role": "user", "content": "x"}]}}],
            "max_tokens",
            id="no-max-tokens",
        ),
        pytest.param(
            [{"custom_id": "a", "params": {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}}],
            "model",
            id="no-model",
        ),
        pytest.param(
            [{"custom_id": "a", "params": {"model": "m", "max_tokens": 5}}], "messages", id="no-messages"
        ),
        pytest.param([request("a", "x", stream=True)], "stream", id="stream"),
        pytest.param([], "requests", id="empty"),
    ],
)
def test_invalid_creates_are_400(
    claude: anthropic.Anthropic, emulator: Emulator, requests: list[Any], fragment: str
) -> None:
    before = emulator.stats()["anthropic"]["batches_created"]
    with pytest.raises(anthropic.BadRequestError) as rejected:
        claude.messages.batches.create(requests=requests)
    assert rejected.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert fragment in rejected.value.body["error"]["message"]  # type: ignore[index]
    assert emulator.stats()["anthropic"]["batches_created"] == before


def test_request_count_and_size_limits(start_emulator: Any) -> None:
    emu = start_emulator(anthropic_max_requests_per_batch=2, anthropic_max_batch_bytes=4000)
    with anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="k", max_retries=0) as client:
        with pytest.raises(anthropic.BadRequestError):
            client.messages.batches.create(requests=[request(f"r{i}", "x") for i in range(3)])
        with pytest.raises(anthropic.APIStatusError) as too_large:
            client.messages.batches.create(requests=[request("big", "y" * 5000)])
        assert too_large.value.status_code == 413
        assert client.messages.batches.create(requests=[request("r0", "x"), request("r1", "x")]).id


def test_unknown_batch_is_404_not_found_error(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        claude.messages.batches.retrieve("msgbatch_nope")
    assert missing.value.body["type"] == "error"  # type: ignore[index]
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


def test_list_pages_with_after_and_before(start_emulator: Any) -> None:
    emu = start_emulator()
    with anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="k", max_retries=0) as client:
        created = [client.messages.batches.create(requests=[request("a", "x")]).id for _ in range(5)]
        newest_first = created[::-1]
        page = client.messages.batches.list(limit=2)
        assert [b.id for b in page.data] == newest_first[:2]
        assert page.has_more and page.first_id == newest_first[0] and page.last_id == newest_first[1]
        assert [
            b.id for b in client.messages.batches.list(limit=2, after_id=newest_first[1]).data
        ] == newest_first[2:4]
        assert [
            b.id for b in client.messages.batches.list(limit=2, before_id=newest_first[3]).data
        ] == newest_first[1:3]
        assert [b.id for b in client.messages.batches.list(limit=2)] == newest_first  # auto-pagination
        with pytest.raises(anthropic.BadRequestError):
            client.messages.batches.list(limit=1001)


def test_cancel_then_delete(start_emulator: Any, h: Any) -> None:
    emu = start_emulator(requests_per_second=20.0, cancelling_seconds=0.1)
    with anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="k", max_retries=0) as client:
        batch = client.messages.batches.create(requests=[request(f"r{i}", f"t{i}") for i in range(100)])
        with pytest.raises(anthropic.BadRequestError):
            client.messages.batches.delete(batch.id)  # still processing
        time.sleep(0.3)
        canceling = client.messages.batches.cancel(batch.id)
        assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
        ended = h.wait_anthropic(client, batch.id)
        counts = ended.request_counts
        assert ended.processing_status == "ended"
        assert 0 < counts.succeeded < 100 and counts.canceled == 100 - counts.succeeded
        results = results_by_id(client, batch.id)
        assert len(results) == 100
        assert sum(r.type == "canceled" for r in results.values()) == counts.canceled
        assert (
            client.messages.batches.cancel(batch.id).processing_status == "ended"
        )  # already canceled: unchanged
        deleted = client.messages.batches.delete(batch.id)
        assert deleted.id == batch.id and deleted.type == "message_batch_deleted"
        with pytest.raises(anthropic.NotFoundError):
            client.messages.batches.retrieve(batch.id)


def test_expiry_marks_unanswered_requests_expired(start_emulator: Any, h: Any) -> None:
    emu = start_emulator(requests_per_second=50.0, expire_after_seconds=0.4)
    with anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="k", max_retries=0) as client:
        batch = client.messages.batches.create(requests=[request(f"r{i}", "t") for i in range(100)])
        ended = h.wait_anthropic(client, batch.id)
        counts = ended.request_counts
        assert 0 < counts.succeeded < 100 and counts.expired == 100 - counts.succeeded
        types = [r.type for r in results_by_id(client, batch.id).values()]
        assert types.count("expired") == counts.expired


def test_results_before_the_end_are_refused(start_emulator: Any) -> None:
    emu = start_emulator(requests_per_second=1.0)
    with anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="k", max_retries=0) as client:
        running = client.messages.batches.create(requests=[request("a", "x"), request("b", "y")])
        early = httpx.get(f"{emu.url}/v1/messages/batches/{running.id}/results")
        assert early.status_code == 400
        assert early.json()["error"]["type"] == "invalid_request_error"
        with pytest.raises(anthropic.AnthropicError):  # the SDK refuses without a results_url
            client.messages.batches.results(running.id)


def test_bad_json_body_and_any_version_header(emulator: Emulator) -> None:
    response = httpx.post(
        emulator.url + "/v1/messages/batches",
        headers={"Authorization": "Bearer anything", "anthropic-version": "2099-01-01"},
        content=b"{not json",
    )
    assert response.status_code == 400
    assert response.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "The request body is not valid JSON."},
    }


def test_stats_count_requests_per_custom_id(start_emulator: Any, h: Any) -> None:
    emu: Emulator = start_emulator()
    with anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="k", max_retries=0) as client:
        client.messages.batches.create(requests=[request("a", "x"), request("b", "x")])
        client.messages.batches.create(requests=[request("a", "x")])
        with pytest.raises(anthropic.BadRequestError):
            client.messages.batches.create(requests=[request("c", "x"), request("c", "x")])
    stats = emu.stats()["anthropic"]
    assert stats["batches_created"] == 2
    assert stats["requests_by_custom_id"] == {"a": 2, "b": 1}
    assert stats["files_uploaded"] == 0
    assert httpx.get(emu.url + "/_emulator/stats").json()["anthropic"] == stats


def test_api_key_via_x_api_key_or_bearer(start_emulator: Any) -> None:
    emu = start_emulator(api_key="secret")
    with anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="wrong", max_retries=0) as bad:
        with pytest.raises(anthropic.AuthenticationError) as denied:
            bad.messages.batches.list()
        assert denied.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    with anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="secret", max_retries=0) as good:
        assert good.messages.batches.list().data == []
    with anthropic.Anthropic(base_url=emu.anthropic_base_url, auth_token="secret", max_retries=0) as bearer:
        assert bearer.messages.batches.list().data == []


async def test_async_client_round_trip(emulator: Emulator, h: Any) -> None:
    async with anthropic.AsyncAnthropic(
        base_url=emulator.anthropic_base_url, api_key="k", max_retries=0
    ) as client:
        created = await client.messages.batches.create(
            requests=[request(f"x{i}", f"async {i}") for i in range(5)]
        )
        ended = await h.wait_anthropic_async(client, created.id)
        assert ended.request_counts.succeeded == 5
        decoded: dict[str, Any] = {
            item.custom_id: item.result async for item in await client.messages.batches.results(created.id)
        }
        assert {cid: r.message.content[0].text for cid, r in decoded.items()} == {
            f"x{i}": f"async {i}" for i in range(5)
        }
        listed = [b.id async for b in client.messages.batches.list(limit=2)]
        assert created.id in listed
        assert (await client.messages.batches.delete(created.id)).type == "message_batch_deleted"


async def test_async_cancel(fast_config: EmulatorConfig, h: Any) -> None:
    from airflow_llm_batch.emulator import AsyncEmulator

    async with AsyncEmulator(fast_config.replace(requests_per_second=10.0)) as emu:
        async with anthropic.AsyncAnthropic(
            base_url=emu.anthropic_base_url, api_key="k", max_retries=0
        ) as client:
            created = await client.messages.batches.create(
                requests=[request(f"c{i}", "x") for i in range(50)]
            )
            assert (await client.messages.batches.cancel(created.id)).processing_status == "canceling"
            ended = await h.wait_anthropic_async(client, created.id)
            assert ended.request_counts.canceled > 0


def test_results_lines_are_plain_jsonl(emulator: Emulator, claude: anthropic.Anthropic, h: Any) -> None:
    batch = claude.messages.batches.create(requests=[request("j1", "one"), request("j2", "two")])
    ended = h.wait_anthropic(claude, batch.id)
    raw = httpx.get(ended.results_url)
    assert raw.status_code == 200
    lines = [json.loads(line) for line in raw.text.splitlines()]
    assert {line["custom_id"] for line in lines} == {"j1", "j2"}
    assert all(line["result"]["type"] == "succeeded" for line in lines)
