"""The fault plan (airflow_llm_batch.emulator.faults) with the official SDKs, for both providers.

Each knob on its own: which rows fail and when they recover, which batches expire and how their
rows split, how many HTTP requests fail and that the SDKs retry through them, slow batches,
broken output lines, the runtime enqueued token limit, clearing the plan, the control routes, the
command line, and the ``succeeded_by_custom_id`` statistic other tests use to prove that nothing
was paid twice.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

import anthropic
import httpx
import openai
import pytest

from airflow_llm_batch.emulator import AsyncEmulator, Emulator, EmulatorConfig, FaultPlan
from airflow_llm_batch.emulator.cli import build_parser, fault_plan_from_args, main

CHAT: Literal["/v1/chat/completions"] = "/v1/chat/completions"


class FakeClock:
    """A clock the test moves by hand, so pacing is exact."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def claude_request(custom_id: str, text: str = "hello") -> Any:
    return {
        "custom_id": custom_id,
        "params": {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": text}]},
    }


def ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(count)]


@pytest.fixture
def emu(fast_config: EmulatorConfig) -> Iterator[Emulator]:
    """A fresh emulator per test: fault counters and statistics start from zero."""
    with Emulator(fast_config) as emulator:
        yield emulator


@pytest.fixture
def oai(emu: Emulator) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as client:
        yield client


@pytest.fixture
def claude(emu: Emulator) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="k", max_retries=0) as client:
        yield client


def run_chat(client: openai.OpenAI, h: Any, custom_ids: list[str]) -> Any:
    return h.run_openai_batch(client, [h.chat_line(c, f"text of {c}") for c in custom_ids], CHAT)


def file_lines(client: openai.OpenAI, file_id: str | None) -> list[str]:
    if file_id is None:
        return []
    return [line for line in client.files.content(file_id).text.splitlines() if line.strip()]


def by_custom_id(client: openai.OpenAI, h: Any, file_id: str | None) -> dict[str, dict[str, Any]]:
    return {line["custom_id"]: line for line in h.parse_jsonl("\n".join(file_lines(client, file_id)))}


def run_claude(client: anthropic.Anthropic, h: Any, custom_ids: list[str]) -> Any:
    created = client.messages.batches.create(requests=[claude_request(c) for c in custom_ids])
    return h.wait_anthropic(client, created.id)


def claude_results(client: anthropic.Anthropic, batch_id: str) -> dict[str, Any]:
    return {item.custom_id: item.result for item in client.messages.batches.results(batch_id)}


# ------------------------------------------------------------------------------------- the plan
def test_plan_validates_its_fields_and_round_trips_as_json() -> None:
    plan = FaultPlan.from_json({"row_error_rate": 0.25, "http_error_statuses": [429, 529], "seed": 3})
    assert plan.http_error_statuses == (429, 529) and plan.row_error_rate == 0.25
    assert FaultPlan.from_json(plan.to_json()) == plan
    assert json.loads(json.dumps(plan.to_json()))["http_error_statuses"] == [429, 529]
    for bad in (
        {"row_error_rate": 1.5},
        {"http_error_rate": -0.1},
        {"expire_done_fraction": 2},
        {"row_error_times": -1},
        {"expire_batches": -1},
        {"slow_factor": 0},
        {"http_error_statuses": []},
        {"http_error_statuses": [200]},
        {"enqueued_token_limit": 0},
        {"row_error_code": ""},
    ):
        with pytest.raises(ValueError):
            FaultPlan.from_json(bad)
    for wrong in ({"unknown": 1}, {"row_error_rate": "a lot"}, {"row_error_times": 1.5}, {"seed": True}, []):
        with pytest.raises(TypeError):
            FaultPlan.from_json(wrong)


def test_selection_is_a_stable_share_of_custom_ids() -> None:
    plan = FaultPlan(row_error_rate=0.2, malformed_output_rate=0.1, seed=11)
    population = ids("s", 5000)
    failing = [c for c in population if plan.row_error_selected(c)]
    broken = [c for c in population if plan.malformed_selected(c)]
    assert 0.18 < len(failing) / len(population) < 0.22
    assert 0.08 < len(broken) / len(population) < 0.12
    assert failing == [c for c in population if FaultPlan(row_error_rate=0.2, seed=11).row_error_selected(c)]
    assert failing != [c for c in population if FaultPlan(row_error_rate=0.2, seed=12).row_error_selected(c)]
    assert all(FaultPlan(row_error_rate=1.0).row_error_selected(c) for c in population[:50])
    assert not any(FaultPlan().row_error_selected(c) for c in population[:50])


# ------------------------------------------------------------------------------------ row errors
def test_openai_row_errors_fail_exactly_the_selected_rows_then_succeed(
    emu: Emulator, oai: openai.OpenAI, h: Any
) -> None:
    plan = FaultPlan(row_error_rate=0.2, row_error_code="server_error", row_error_times=1, seed=7)
    custom_ids = ids("r", 400)
    selected = {c for c in custom_ids if plan.row_error_selected(c)}
    assert 0.14 * 400 < len(selected) < 0.26 * 400
    emu.set_fault_plan(plan)
    assert emu.fault_plan == plan

    first = run_chat(oai, h, custom_ids)
    assert first.status == "completed"
    assert first.request_counts.failed == len(selected)
    assert first.request_counts.completed == 400 - len(selected)
    errors = by_custom_id(oai, h, first.error_file_id)
    assert set(errors) == selected
    assert {e["response"]["status_code"] for e in errors.values()} == {500}
    assert {e["response"]["body"]["error"]["code"] for e in errors.values()} == {"server_error"}
    assert {e["response"]["body"]["error"]["type"] for e in errors.values()} == {"server_error"}
    assert set(by_custom_id(oai, h, first.output_file_id)) == set(custom_ids) - selected

    second = run_chat(oai, h, sorted(selected))  # attempt 2 of each failed row, in a new batch
    assert second.status == "completed" and second.request_counts.failed == 0
    assert set(by_custom_id(oai, h, second.output_file_id)) == selected

    stats = emu.stats()["openai"]
    assert stats["row_errors_injected"] == len(selected)
    assert stats["succeeded_by_custom_id"] == dict.fromkeys(custom_ids, 1)
    assert all(stats["requests_by_custom_id"][c] == 2 for c in selected)

    emu.set_fault_plan(plan)  # setting the plan again restarts the counts: the same rows fail again
    again = run_chat(oai, h, custom_ids)
    assert set(by_custom_id(oai, h, again.error_file_id)) == selected


def test_anthropic_row_errors_fail_n_times_or_always(emu: Emulator, claude: anthropic.Anthropic, h: Any) -> None:
    custom_ids = ids("a", 120)
    plan = FaultPlan(row_error_rate=0.3, row_error_code="overloaded_error", row_error_times=2, seed=5)
    selected = {c for c in custom_ids if plan.row_error_selected(c)}
    emu.set_fault_plan(plan)
    for _attempt in range(2):
        ended = run_claude(claude, h, custom_ids)
        assert ended.request_counts.errored == len(selected)
        results = claude_results(claude, ended.id)
        errored = {c for c, r in results.items() if r.type == "errored"}
        assert errored == selected
        assert {results[c].error.error.type for c in errored} == {"overloaded_error"}
    third = run_claude(claude, h, custom_ids)
    assert third.request_counts.succeeded == len(custom_ids)

    emu.set_fault_plan(plan.replace(row_error_times=0, row_error_code="api_error"))
    for _attempt in range(3):
        ended = run_claude(claude, h, sorted(selected))
        assert ended.request_counts.errored == len(selected)
    stats = emu.stats()["anthropic"]
    assert stats["succeeded_by_custom_id"] == {c: 3 - 2 * (c in selected) for c in custom_ids}


def test_row_error_codes_map_like_the_prompt_marker(emu: Emulator, oai: openai.OpenAI, h: Any) -> None:
    for code, status in (("rate_limit_exceeded", 429), ("authentication_error", 400), ("timeout", 504)):
        emu.set_fault_plan(FaultPlan(row_error_rate=1.0, row_error_code=code))
        batch = run_chat(oai, h, ["only"])
        line = by_custom_id(oai, h, batch.error_file_id)["only"]
        assert line["response"]["status_code"] == status
        assert line["response"]["body"]["error"]["code"] == code


# -------------------------------------------------------------------------------------- expiry
def test_openai_expire_batches_expires_only_the_first_batches(emu: Emulator, oai: openai.OpenAI, h: Any) -> None:
    emu.set_fault_plan(FaultPlan(expire_batches=2, expire_done_fraction=0.6))
    for round_ in range(2):
        custom_ids = ids(f"e{round_}-", 100)
        batch = run_chat(oai, h, custom_ids)
        assert batch.status == "expired" and batch.expired_at is not None
        assert batch.request_counts.completed == 60 and batch.request_counts.failed == 0
        answered = by_custom_id(oai, h, batch.output_file_id)
        expired = by_custom_id(oai, h, batch.error_file_id)
        assert len(answered) == 60 and len(expired) == 40
        assert set(answered) | set(expired) == set(custom_ids)
        assert all(line["response"] is None and line["error"]["code"] == "batch_expired" for line in expired.values())
        assert all(line["response"]["status_code"] == 200 for line in answered.values())
        paid = emu.stats()["openai"]["succeeded_by_custom_id"]
        assert {c for c in custom_ids if c in paid} == set(answered)
    third = run_chat(oai, h, ids("e2-", 100))
    assert third.status == "completed" and third.request_counts.completed == 100


def test_openai_expiry_keeps_answered_failures_in_the_error_file(emu: Emulator, oai: openai.OpenAI, h: Any) -> None:
    emu.set_fault_plan(FaultPlan(expire_batches=1, expire_done_fraction=0.5))
    records = [h.chat_line(f"m{i}", "boom [[emulator:error:server_error]]" if i % 2 else "fine") for i in range(40)]
    batch = h.run_openai_batch(oai, records, CHAT)
    assert batch.status == "expired"
    counts = batch.request_counts
    assert counts.completed + counts.failed == 20
    errors = h.parse_jsonl("\n".join(file_lines(oai, batch.error_file_id)))
    assert sum(line["error"] is not None for line in errors) == 20  # batch_expired rows
    assert sum(line["response"] is not None for line in errors) == counts.failed
    assert len(file_lines(oai, batch.output_file_id)) == counts.completed


def test_anthropic_expire_batches_with_the_right_split(emu: Emulator, claude: anthropic.Anthropic, h: Any) -> None:
    emu.set_fault_plan(FaultPlan(expire_batches=1, expire_done_fraction=0.25))
    custom_ids = ids("x", 10)
    ended = run_claude(claude, h, custom_ids)
    counts = ended.request_counts
    assert (counts.succeeded, counts.expired, counts.errored, counts.processing) == (3, 7, 0, 0)  # ceil(2.5)
    results = claude_results(claude, ended.id)
    assert set(results) == set(custom_ids)
    assert sum(r.type == "expired" for r in results.values()) == 7
    assert run_claude(claude, h, ids("y", 10)).request_counts.succeeded == 10


def test_expire_budget_is_shared_by_both_providers(
    emu: Emulator, oai: openai.OpenAI, claude: anthropic.Anthropic, h: Any
) -> None:
    emu.set_fault_plan(FaultPlan(expire_batches=1, expire_done_fraction=0.0))
    assert run_claude(claude, h, ["c1", "c2"]).request_counts.expired == 2
    assert run_chat(oai, h, ["o1"]).status == "completed"


def test_a_batch_that_fails_validation_does_not_use_the_expire_budget(
    emu: Emulator, oai: openai.OpenAI, h: Any
) -> None:
    emu.set_fault_plan(FaultPlan(expire_batches=1, expire_done_fraction=1.0))
    bad = h.run_openai_batch(oai, ["not json"], CHAT)
    assert bad.status == "failed"
    batch = run_chat(oai, h, ["a", "b"])
    assert batch.status == "expired" and batch.request_counts.completed == 2 and batch.error_file_id is None


# ---------------------------------------------------------------------------------- HTTP errors
def test_http_errors_hit_the_share_and_the_sdks_retry_through_them(emu: Emulator, h: Any) -> None:
    emu.set_fault_plan(FaultPlan(http_error_rate=0.3, seed=3))
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k") as client:  # default retries
        batch = run_chat(client, h, ids("h", 30))
        assert batch.status == "completed"
        assert len(file_lines(client, batch.output_file_id)) == 30
        assert len(client.batches.list().data) == 1
    with anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="k") as claude:
        ended = run_claude(claude, h, ids("k", 30))
        assert ended.request_counts.succeeded == 30
        assert len(claude_results(claude, ended.id)) == 30

    stats = emu.stats()
    requests = stats["openai"]["api_requests"] + stats["anthropic"]["api_requests"]
    injected = stats["openai"]["http_errors_injected"] + stats["anthropic"]["http_errors_injected"]
    assert stats["openai"]["http_errors_injected"] > 0 and stats["anthropic"]["http_errors_injected"] > 0
    assert abs(injected - 0.3 * requests) <= 1
    assert stats["openai"]["batches_created"] == 1 and stats["anthropic"]["batches_created"] == 1
    assert set(stats["openai"]["http_errors_by_status"]) <= {"429", "500", "503"}
    assert set(stats["anthropic"]["http_errors_by_status"]) <= {"429", "500", "529"}


def test_an_injected_http_error_tells_the_sdks_to_retry_after_10_ms(emu: Emulator) -> None:
    """Both SDKs read ``retry-after-ms``: the fault matrix retries in milliseconds, not 0.5-s backoffs."""
    emu.set_fault_plan(FaultPlan(http_error_rate=1.0, seed=3))
    answer = httpx.get(f"{emu.openai_base_url}/batches", headers={"Authorization": "Bearer k"})
    assert answer.status_code in (429, 500, 503)
    assert answer.headers["retry-after-ms"] == "10" and answer.headers["retry-after"] == "0"


def test_http_errors_look_like_each_providers_errors(emu: Emulator) -> None:
    emu.set_fault_plan(FaultPlan(http_error_rate=1.0, http_error_statuses=(429, 500, 503)))
    seen: list[tuple[int, Any, httpx.Headers]] = []
    for _ in range(3):
        response = httpx.get(emu.openai_base_url + "/batches")
        seen.append((response.status_code, response.json(), response.headers))
    assert [status for status, _, _ in seen] == [429, 500, 503]
    assert seen[0][1]["error"]["code"] == "rate_limit_exceeded" and seen[0][1]["error"]["type"] == "requests"
    assert seen[1][1]["error"]["type"] == "server_error" and seen[2][1]["error"]["type"] == "server_error"
    assert all(set(body["error"]) == {"message", "type", "param", "code"} for _, body, _ in seen)
    assert all(hd["retry-after"] == "0" and hd["retry-after-ms"] == "10" and "x-request-id" in hd for *_, hd in seen)

    claude_seen = [httpx.get(emu.anthropic_base_url + "/v1/messages/batches") for _ in range(3)]
    assert [r.status_code for r in claude_seen] == [429, 500, 529]
    assert [r.json()["error"]["type"] for r in claude_seen] == ["rate_limit_error", "api_error", "overloaded_error"]
    assert all(r.json()["type"] == "error" and r.headers["retry-after-ms"] == "10" for r in claude_seen)

    assert httpx.get(emu.url + "/_emulator/stats").status_code == 200  # control routes never fail
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as client:
        with pytest.raises(openai.RateLimitError):
            client.batches.list()
        with pytest.raises(openai.InternalServerError):
            client.batches.list()
    emu.set_fault_plan(FaultPlan(http_error_rate=1.0, http_error_statuses=(429, 500, 503)))  # restart the cycle
    with anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="k", max_retries=0) as claude:
        errors = []
        for _ in range(3):
            with pytest.raises(anthropic.APIStatusError) as caught:
                claude.messages.batches.list()
            errors.append(type(caught.value))
        assert errors == [anthropic.RateLimitError, anthropic.InternalServerError, anthropic.OverloadedError]


def test_http_error_statuses_start_from_the_seed(emu: Emulator) -> None:
    emu.set_fault_plan(FaultPlan(http_error_rate=1.0, http_error_statuses=(429, 500, 503), seed=1))
    assert [httpx.get(emu.openai_base_url + "/files").status_code for _ in range(4)] == [500, 503, 429, 500]


def test_http_errors_come_before_any_processing(emu: Emulator, oai: openai.OpenAI, h: Any) -> None:
    uploaded = oai.files.create(file=("in.jsonl", h.jsonl([h.chat_line("one", "x")])), purpose="batch")
    emu.set_fault_plan(FaultPlan(http_error_rate=1.0))
    with pytest.raises(openai.RateLimitError):
        oai.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")
    stats = emu.stats()["openai"]
    assert stats["batches_created"] == 0 and stats["http_errors_injected"] == 1


def test_injected_faults_count_as_http_errors(emu: Emulator) -> None:
    emu.inject_fault(503, count=2, path_prefix="/v1/batches")
    assert httpx.get(emu.openai_base_url + "/batches").status_code == 503
    stats = emu.stats()["openai"]
    assert stats["http_errors_injected"] == 1 and stats["http_errors_by_status"] == {"503": 1}
    assert stats["api_requests"] == 1


# ---------------------------------------------------------------------------------- slow batches
@pytest.fixture
def clocked() -> Iterator[tuple[Emulator, FakeClock]]:
    clock = FakeClock()
    config = EmulatorConfig(validating_seconds=1.0, requests_per_second=100.0, finalizing_seconds=1.0)
    with Emulator(config, clock=clock) as emulator:
        yield emulator, clock


def test_slow_factor_divides_the_pace(clocked: tuple[Emulator, FakeClock], h: Any) -> None:
    emu, clock = clocked
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as client:
        uploaded = client.files.create(
            file=("in.jsonl", h.jsonl(h.chat_line(f"s{i}", "x") for i in range(100))), purpose="batch"
        )

        def create() -> str:
            return client.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h").id

        normal = create()
        emu.set_fault_plan(FaultPlan(slow_factor=10.0))
        slow = create()
        emu.clear_fault_plan()
        clock.now += 1.0 + 0.5  # validated, then half a second at 100/s (normal) or 10/s (slow)
        assert client.batches.retrieve(normal).request_counts.completed == 50
        assert client.batches.retrieve(slow).request_counts.completed == 5
        clock.now += 1.5  # the normal batch ran 2 s: finished and finalized
        assert client.batches.retrieve(normal).status == "completed"
        assert client.batches.retrieve(slow).status == "in_progress"
        clock.now += 8.0  # 10 s of processing for the slow one, then 1 s finalizing
        assert client.batches.retrieve(slow).status == "finalizing"
        clock.now += 1.0
        assert client.batches.retrieve(slow).status == "completed"

    with anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="k", max_retries=0) as claude:
        emu.set_fault_plan(FaultPlan(slow_factor=4.0))
        created = claude.messages.batches.create(requests=[claude_request(f"c{i}") for i in range(100)])
        clock.now += 2.0 + 1.0  # 1 s + finalizing at normal pace, not at a quarter of it
        assert claude.messages.batches.retrieve(created.id).processing_status == "in_progress"
        clock.now += 2.0
        assert claude.messages.batches.retrieve(created.id).processing_status == "ended"


def test_plan_expiry_is_exact_with_a_clock(clocked: tuple[Emulator, FakeClock], h: Any) -> None:
    emu, clock = clocked
    emu.set_fault_plan(FaultPlan(expire_batches=1, expire_done_fraction=0.6))
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as client:
        uploaded = client.files.create(
            file=("in.jsonl", h.jsonl(h.chat_line(f"t{i}", "x") for i in range(100))), purpose="batch"
        )
        batch = client.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")
        created = clock.now
        clock.now += 1.0 + 0.595
        seen = client.batches.retrieve(batch.id)
        assert seen.status == "in_progress" and seen.request_counts.completed == 59
        clock.now += 0.01  # 60 answered at created + 1.6 s: expired at that moment
        expired = client.batches.retrieve(batch.id)
        assert expired.status == "expired" and expired.request_counts.completed == 60
        assert expired.expired_at == math.floor(created + 1.6)
        assert len(file_lines(client, expired.error_file_id)) == 40


# ------------------------------------------------------------------------------- malformed lines
def test_malformed_openai_output_lines_at_the_given_share(emu: Emulator, oai: openai.OpenAI, h: Any) -> None:
    plan = FaultPlan(malformed_output_rate=0.1, seed=4)
    custom_ids = ids("m", 300)
    selected = {c for c in custom_ids if plan.malformed_selected(c)}
    assert 15 < len(selected) < 45
    emu.set_fault_plan(plan)
    batch = run_chat(oai, h, custom_ids)
    assert batch.status == "completed" and batch.request_counts.completed == 300
    good: set[str] = set()
    broken = 0
    for line in file_lines(oai, batch.output_file_id):
        try:
            good.add(json.loads(line)["custom_id"])
        except json.JSONDecodeError:
            broken += 1
            match = re.search(r'"custom_id":"([^"]+)"', line)
            assert match and match.group(1) in selected
    assert broken == len(selected) and good == set(custom_ids) - selected
    stats = emu.stats()["openai"]
    assert stats["malformed_lines"] == len(selected)
    assert set(stats["succeeded_by_custom_id"]) == good  # a broken line is not a delivered answer

    resent = run_chat(oai, h, sorted(selected))  # the next delivery of those rows is intact
    assert set(by_custom_id(oai, h, resent.output_file_id)) == selected
    assert emu.stats()["openai"]["succeeded_by_custom_id"] == dict.fromkeys(custom_ids, 1)


def test_malformed_anthropic_results_lines(emu: Emulator, claude: anthropic.Anthropic, h: Any) -> None:
    plan = FaultPlan(malformed_output_rate=0.25, seed=9)
    custom_ids = ids("q", 80)
    selected = {c for c in custom_ids if plan.malformed_selected(c)}
    emu.set_fault_plan(plan)
    ended = run_claude(claude, h, custom_ids)
    assert ended.results_url is not None
    lines = httpx.get(ended.results_url).text.splitlines()
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    assert len(lines) == 80 and len(lines) - len(parsed) == len(selected)
    assert {p["custom_id"] for p in parsed} == set(custom_ids) - selected
    assert emu.stats()["anthropic"]["malformed_lines"] == len(selected)


# ----------------------------------------------------------------------- runtime enqueued limit
def test_runtime_enqueued_token_limit(start_emulator: Callable[..., Emulator], h: Any) -> None:
    emu = start_emulator(requests_per_second=5.0)
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as client:

        def create(prefix: str) -> Any:
            uploaded = client.files.create(
                file=("in.jsonl", h.jsonl(h.chat_line(f"{prefix}{i}", "x" * 40) for i in range(3))),
                purpose="batch",
            )
            return client.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")

        first = create("a")  # 3 * (5 + 3) = 24 tokens, created before any plan, still counts once a limit is set
        emu.set_fault_plan(FaultPlan(enqueued_token_limit=40))
        second = create("b")  # 24 more: over 40 while the first one runs
        refused = h.wait_openai(client, second.id)
        assert refused.status == "failed" and refused.errors.data[0].code == "token_limit_exceeded"
        emu.set_fault_plan(FaultPlan(enqueued_token_limit=100))
        assert h.wait_openai(client, create("c").id).status != "failed"
        emu.clear_fault_plan()  # back to the config: no limit
        assert h.wait_openai(client, create("d").id).status != "failed"
        assert h.wait_openai(client, first.id).status == "completed"


def test_plan_limit_overrides_the_configured_one(start_emulator: Callable[..., Emulator], h: Any) -> None:
    emu = start_emulator(enqueued_token_limit=10)
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as client:
        big = [h.chat_line("big", "x" * 100)]  # 13 + 3 prompt tokens (cl100k_base)
        assert h.run_openai_batch(client, big, CHAT).status == "failed"
        emu.set_fault_plan(FaultPlan(enqueued_token_limit=1000))
        assert h.run_openai_batch(client, big, CHAT).status == "completed"


# --------------------------------------------------------------------------- clearing, routes, API
def test_clear_fault_plan_restores_normal_behaviour(
    emu: Emulator, oai: openai.OpenAI, claude: anthropic.Anthropic, h: Any
) -> None:
    emu.set_fault_plan(
        FaultPlan(
            row_error_rate=1.0,
            row_error_times=0,
            expire_batches=5,
            malformed_output_rate=1.0,
            slow_factor=50.0,
            enqueued_token_limit=1,
        )
    )
    assert run_chat(oai, h, ["z"]).status == "failed"  # token limit of 1
    emu.clear_fault_plan()
    assert emu.fault_plan is None
    batch = run_chat(oai, h, ids("n", 20))
    assert batch.status == "completed" and batch.request_counts.completed == 20 and batch.error_file_id is None
    assert len(by_custom_id(oai, h, batch.output_file_id)) == 20
    ended = run_claude(claude, h, ids("n", 20))
    assert ended.request_counts.succeeded == 20
    assert all(r.type == "succeeded" for r in claude_results(claude, ended.id).values())
    stats = emu.stats()
    assert stats["openai"]["http_errors_injected"] == 0 and stats["anthropic"]["row_errors_injected"] == 0


def test_control_routes_set_read_and_clear_the_plan(emu: Emulator, claude: anthropic.Anthropic, h: Any) -> None:
    url = emu.url + "/_emulator/fault-plan"
    assert httpx.get(url).json() == {"fault_plan": None}
    posted = httpx.post(url, json={"row_error_rate": 1.0, "row_error_code": "api_error", "seed": 2})
    assert posted.status_code == 200
    assert posted.json()["fault_plan"] == FaultPlan(row_error_rate=1.0, row_error_code="api_error", seed=2).to_json()
    assert emu.fault_plan == FaultPlan(row_error_rate=1.0, row_error_code="api_error", seed=2)
    assert run_claude(claude, h, ["p1", "p2"]).request_counts.errored == 2
    assert httpx.post(url, json={"row_error_rate": 3}).status_code == 400
    assert httpx.post(url, json={"nope": 1}).status_code == 400
    assert httpx.post(url, content=b"not json").status_code == 400
    assert emu.fault_plan is not None  # a rejected plan leaves the current one in force
    assert httpx.delete(url).json() == {"fault_plan": None}
    assert emu.fault_plan is None
    assert run_claude(claude, h, ["p1", "p2"]).request_counts.succeeded == 2


def test_config_sets_the_plan_at_start(fast_config: EmulatorConfig, h: Any) -> None:
    plan = FaultPlan(row_error_rate=1.0, row_error_times=1)
    with Emulator(fast_config.replace(fault_plan=plan)) as emu:
        assert emu.fault_plan == plan
        with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as client:
            assert run_chat(client, h, ["c"]).request_counts.failed == 1
            assert run_chat(client, h, ["c"]).request_counts.completed == 1
    with pytest.raises(TypeError):
        fast_config.replace(fault_plan={"row_error_rate": 1.0})
    with pytest.raises(TypeError):
        Emulator(fast_config).set_fault_plan({"row_error_rate": 1.0})  # type: ignore[arg-type]


def test_async_emulator_sets_and_clears_the_plan(fast_config: EmulatorConfig, h: Any) -> None:
    async def scenario() -> None:
        async with AsyncEmulator(fast_config) as emu:
            emu.set_fault_plan(FaultPlan(row_error_rate=1.0))
            async with anthropic.AsyncAnthropic(base_url=emu.anthropic_base_url, api_key="k") as claude:
                created = await claude.messages.batches.create(requests=[claude_request("as")])
                ended = await h.wait_anthropic_async(claude, created.id)
                assert ended.request_counts.errored == 1
                emu.clear_fault_plan()
                created = await claude.messages.batches.create(requests=[claude_request("as")])
                ended = await h.wait_anthropic_async(claude, created.id)
                assert ended.request_counts.succeeded == 1
            assert emu.stats()["anthropic"]["succeeded_by_custom_id"] == {"as": 1}

    asyncio.run(scenario())


# ------------------------------------------------------------------------------------- statistics
def test_succeeded_by_custom_id_counts_delivered_successes_only(
    start_emulator: Callable[..., Emulator], h: Any
) -> None:
    emu = start_emulator(validating_seconds=0.0, requests_per_second=50.0, cancelling_seconds=0.05)
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as client:
        records = [h.chat_line("ok", "fine"), h.chat_line("bad", "[[emulator:error:server_error]]")]
        h.run_openai_batch(client, records, CHAT)
        h.run_openai_batch(client, [h.chat_line("ok", "fine"), "not json"], CHAT)  # fails validation
        assert emu.stats()["openai"]["succeeded_by_custom_id"] == {"ok": 1}

        uploaded = client.files.create(
            file=("in.jsonl", h.jsonl(h.chat_line(f"c{i}", "t") for i in range(100))), purpose="batch"
        )
        batch = client.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")
        running = client.batches.retrieve(batch.id)
        while running.request_counts.completed < 5:
            time.sleep(0.02)
            running = client.batches.retrieve(batch.id)
        assert not any(c.startswith("c") for c in emu.stats()["openai"]["succeeded_by_custom_id"])  # not ended
        client.batches.cancel(batch.id)
        cancelled = h.wait_openai(client, batch.id)
        paid = {c for c in emu.stats()["openai"]["succeeded_by_custom_id"] if c.startswith("c")}
        assert cancelled.status == "cancelled" and len(paid) == cancelled.request_counts.completed > 0
        assert paid == set(by_custom_id(client, h, cancelled.output_file_id))
    emu.reset_stats()
    assert emu.stats()["openai"]["succeeded_by_custom_id"] == {}


# -------------------------------------------------------------------------------------------- CLI
def test_cli_flags_build_the_plan() -> None:
    parser = build_parser()
    assert fault_plan_from_args(parser.parse_args([])) is None
    args = parser.parse_args(
        [
            "--row-error-rate",
            "0.1",
            "--row-error-code",
            "rate_limit_exceeded",
            "--row-error-times",
            "0",
            "--expire-batches",
            "2",
            "--expire-done-fraction",
            "0.5",
            "--http-error-rate",
            "0.3",
            "--http-error-statuses",
            "429,529",
            "--slow-factor",
            "3",
            "--malformed-output-rate",
            "0.05",
            "--enqueued-token-limit",
            "5000",
            "--fault-seed",
            "42",
        ]
    )
    assert fault_plan_from_args(args) == FaultPlan(
        row_error_rate=0.1,
        row_error_code="rate_limit_exceeded",
        row_error_times=0,
        expire_batches=2,
        expire_done_fraction=0.5,
        http_error_rate=0.3,
        http_error_statuses=(429, 529),
        slow_factor=3.0,
        malformed_output_rate=0.05,
        enqueued_token_limit=5000,
        seed=42,
    )
    for bad in (["--row-error-rate", "2"], ["--http-error-statuses", "x"], ["--slow-factor", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            main(bad)
        assert exit_info.value.code == 2


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_cli_starts_with_the_fault_plan() -> None:
    command = [sys.executable, "-m", "airflow_llm_batch.emulator", "--port", "0"]
    command += ["--row-error-rate", "0.5", "--http-error-rate", "0.2", "--fault-seed", "9"]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        match = re.search(r"on (http://\S+) ", process.stdout.readline())
        assert match
        assert "fault plan" in process.stdout.readline()
        plan = httpx.get(match.group(1) + "/_emulator/fault-plan").json()["fault_plan"]
        assert plan == FaultPlan(row_error_rate=0.5, http_error_rate=0.2, seed=9).to_json()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)
