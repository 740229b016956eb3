"""LLMBatchTrigger run directly (no Airflow scheduler) against the bundled emulator."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from openai import OpenAI

from airflow_llm_batch.triggers.batch import LLMBatchTrigger
from airflow_llm_batch.triggers.events import WaitEvent, WaitOutcome


def make_batch(client: OpenAI, rows: int = 20) -> str:
    lines = [json.dumps({"custom_id": f"c{i}", "method": "POST", "url": "/v1/chat/completions",
                         "body": {"model": "m", "messages": [{"role": "user", "content": f"hi {i}"}]}})
             for i in range(rows)]
    upload = client.files.create(file=("in.jsonl", "\n".join(lines).encode()), purpose="batch")
    return client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                 completion_window="24h").id


async def first_event(trigger: LLMBatchTrigger) -> WaitEvent:
    gen = trigger.run()
    event = await gen.asend(None)
    await gen.aclose()
    return WaitEvent.from_payload(event.payload)


@pytest.fixture
def client(emulator: Any) -> Iterator[OpenAI]:
    with OpenAI(base_url=emulator.openai_base_url, api_key="test-key") as c:
        yield c


async def test_yields_one_event_when_every_batch_ended(client: OpenAI) -> None:
    ids = [make_batch(client) for _ in range(3)]
    trigger = LLMBatchTrigger(provider="openai", conn_id="llm_emulator", batch_ids=ids, poll_interval=0.1)
    event = await first_event(trigger)
    assert event.outcome == WaitOutcome.ENDED
    assert {b.batch_id for b in event.batches} == set(ids)
    assert all(b.state.value == "completed" and b.completed == 20 for b in event.batches)


def test_serialized_kwargs_hold_no_secret() -> None:
    path, kwargs = LLMBatchTrigger(provider="openai", conn_id="llm_emulator", batch_ids=["b"]).serialize()
    assert path == "airflow_llm_batch.triggers.batch.LLMBatchTrigger"
    assert "test-key" not in json.dumps(kwargs) and set(kwargs) >= {"conn_id", "batch_ids"}
    assert LLMBatchTrigger(**kwargs).serialize() == (path, kwargs)


async def test_unknown_batch_ends_the_wait_at_once(client: OpenAI) -> None:
    """A 404 is a batch gone from the provider (retention, a restart): reported as ended and failed with
    ``batch_not_found``, next to the other batches' progress, so the worker sends its rows again."""
    alive = make_batch(client)
    trigger = LLMBatchTrigger(provider="openai", conn_id="llm_emulator", batch_ids=["batch_nope", alive],
                              poll_interval=0.1, return_on_first_end=True)
    started = time.monotonic()
    event = await first_event(trigger)
    assert event.outcome == WaitOutcome.ENDED
    gone = event.batches[0]
    assert (gone.batch_id, gone.state.value, gone.provider_status) == ("batch_nope", "failed", "not_found")
    assert [e["code"] for e in gone.errors] == ["batch_not_found"] and "NotFound" in gone.errors[0]["message"]
    assert event.batches[1].batch_id == alive
    assert time.monotonic() - started < 10


async def test_transient_errors_are_tolerated(client: OpenAI, emulator: Any) -> None:
    batch_id = make_batch(client)
    # the SDK retries each call twice on its own; 3 failures per call x 2 calls = trigger-level retries
    emulator.inject_fault(503, count=6, path_prefix=f"/v1/batches/{batch_id}", method="GET")
    try:
        trigger = LLMBatchTrigger(provider="openai", conn_id="llm_emulator", batch_ids=[batch_id],
                                  poll_interval=0.05)
        event = await first_event(trigger)
    finally:
        emulator.clear_faults()
    assert event.outcome == WaitOutcome.ENDED


async def test_too_many_consecutive_errors_end_with_an_error(client: OpenAI, emulator: Any) -> None:
    batch_id = make_batch(client)
    emulator.inject_fault(500, count=1000, path_prefix=f"/v1/batches/{batch_id}", method="GET")
    try:
        trigger = LLMBatchTrigger(provider="openai", conn_id="llm_emulator", batch_ids=[batch_id],
                                  poll_interval=0.01, max_consecutive_errors=2)
        event = await first_event(trigger)
    finally:
        emulator.clear_faults()
    assert event.outcome == WaitOutcome.ERROR and "3 in a row" in (event.message or "")


async def test_deadline_passed_yields_timeout(client: OpenAI, emulator: Any) -> None:
    from airflow_llm_batch.emulator import Emulator, EmulatorConfig

    with Emulator(EmulatorConfig(port=0, validating_seconds=30)) as slow:
        import os

        os.environ["AIRFLOW_CONN_SLOW_EMULATOR"] = json.dumps(
            {"conn_type": "openai", "password": "k", "host": slow.openai_base_url})
        with OpenAI(base_url=slow.openai_base_url, api_key="k") as slow_client:
            batch_id = make_batch(slow_client)
        trigger = LLMBatchTrigger(provider="openai", conn_id="slow_emulator", batch_ids=[batch_id],
                                  poll_interval=0.05, timeout_at=time.time() + 0.3)
        event = await first_event(trigger)
    assert event.outcome == WaitOutcome.TIMEOUT
    assert event.batches[0].provider_status == "validating"


async def test_triggers_on_one_connection_share_one_client(client: OpenAI) -> None:
    import asyncio

    from airflow_llm_batch.triggers import shared_backends

    ids = [make_batch(client) for _ in range(4)]
    triggers = [LLMBatchTrigger(provider="openai", conn_id="llm_emulator", batch_ids=[b], poll_interval=0.1)
                for b in ids]
    seen: list[int] = []
    original = shared_backends._build

    async def counting_build(provider: str, conn_id: str, options: object = None) -> object:
        backend = await original(provider, conn_id, options)  # type: ignore[arg-type]
        seen.append(id(backend))
        return backend

    shared_backends._build = counting_build  # type: ignore[assignment]
    try:
        events = await asyncio.gather(*(first_event(t) for t in triggers))
    finally:
        shared_backends._build = original
    assert all(e.outcome == WaitOutcome.ENDED for e in events)
    assert len(seen) == 1 and not shared_backends._SHARED


def test_the_event_carries_each_batchs_running_time_and_old_payloads_still_load() -> None:
    from airflow_llm_batch.pipeline.types import BatchProgress, BatchState
    from airflow_llm_batch.triggers.events import WaitEvent, WaitOutcome

    seen = BatchProgress(batch_id="b1", state=BatchState.COMPLETED, provider_status="completed", running_since=12.5)
    payload = WaitEvent(WaitOutcome.ENDED, [seen]).to_payload()
    assert payload["version"] == 1
    assert WaitEvent.from_payload(payload).batches[0].running_since == 12.5
    del payload["batches"][0]["running_since"]  # an event sent before running times were carried
    assert WaitEvent.from_payload(payload).batches[0].running_since is None
