"""The triggerer's raw poll: the same BatchProgress as the SDK poll, per provider and batch state, with
the connection's own key, and the same error meanings through the trigger (against the emulator)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from openai import OpenAI

from airflow_llm_batch.emulator import Emulator, EmulatorConfig
from airflow_llm_batch.pipeline.types import BatchProgress
from airflow_llm_batch.triggers.batch import LLMBatchTrigger
from airflow_llm_batch.triggers.events import WaitOutcome
from airflow_llm_batch.triggers.raw_poll import RawPoller
from airflow_llm_batch.triggers.shared_backends import shared_backend, shared_poller
from tests.triggers.test_batch_trigger import first_event, make_batch

KEY = "raw-poll-key"
PROVIDERS = ("openai", "azure_openai", "anthropic", "gemini")


@pytest.fixture(scope="module")
def keyed() -> Iterator[Emulator]:
    """An emulator that requires KEY, slow enough that a poll sees a batch pending, running, then ended."""
    with Emulator(EmulatorConfig(host="127.0.0.1", port=0, api_key=KEY, validating_seconds=0.3,
                                 requests_per_second=4.0, finalizing_seconds=0.2)) as emu:
        for provider in PROVIDERS:
            os.environ[f"AIRFLOW_CONN_RAW_{provider.upper()}"] = json.dumps(connection(emu, provider, KEY))
            os.environ[f"AIRFLOW_CONN_RAW_{provider.upper()}_WRONG"] = json.dumps(connection(emu, provider, "nope"))
        yield emu


def connection(emu: Emulator, provider: str, key: str) -> dict[str, Any]:
    host = {"openai": emu.openai_base_url, "anthropic": emu.anthropic_base_url}.get(provider, emu.url)
    conn_type = {"azure_openai": "llm_batch_azure_openai", "gemini": "llm_batch_gemini"}.get(provider, provider)
    extra = {"api_version": "2024-10-21"} if provider == "azure_openai" else {}
    return {"conn_type": conn_type, "password": key, "host": host, "extra": extra}


async def create(provider: str, backend: Any, rows: int = 6) -> str:
    """A batch of ``rows`` requests created through the provider's SDK client."""
    if provider in ("openai", "azure_openai"):
        return await asyncio.to_thread(make_batch, OpenAI(base_url=f"{backend.client.base_url}", api_key=KEY,
                                                          default_query=dict(backend.client.default_query)), rows)
    if provider == "anthropic":
        batch = await backend.client.messages.batches.create(requests=[
            {"custom_id": f"r{i}", "params": {"model": "claude", "max_tokens": 8,
                                              "messages": [{"role": "user", "content": f"hi {i}"}]}}
            for i in range(rows)])
        return str(batch.id)
    job = await backend.client.aio.batches.create(model="gemini-2.0-flash", src=[
        {"contents": [{"role": "user", "parts": [{"text": f"hi {i}"}]}], "metadata": {"key": f"r{i}"}}
        for i in range(rows)])
    return str(job.name)


async def same_answers(provider: str, action: str = "") -> set[str]:
    """Poll one batch through the SDK and raw until it ends: every raw poll between two equal SDK polls
    must equal them. Returns the provider statuses seen."""
    seen: set[str] = set()
    async with shared_backend(provider, f"raw_{provider}") as backend, \
            shared_poller(provider, f"raw_{provider}") as poller:
        assert isinstance(poller, RawPoller)
        batch_id = await create(provider, backend)
        if action == "cancel":
            await backend.cancel(batch_id)
        for _ in range(400):
            before: BatchProgress = await backend.progress(batch_id)
            raw = await poller.progress(batch_id)
            after = await backend.progress(batch_id)
            if before == after:
                assert raw == before
                seen.add(raw.provider_status)
                if raw.state.is_terminal:
                    return seen
            await asyncio.sleep(0.05)
    raise AssertionError(f"{provider} batch never ended; seen {seen}")


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_raw_poll_reads_what_the_sdk_reads_in_every_state(keyed: Emulator, provider: str) -> None:
    seen = await same_answers(provider)
    ended = {"openai": "completed", "azure_openai": "completed", "anthropic": "ended",
             "gemini": "BATCH_STATE_SUCCEEDED"}[provider]
    assert ended in seen and len(seen) >= 2  # at least one open state and the end


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_raw_poll_reads_a_cancelled_batch_as_the_sdk_does(keyed: Emulator, provider: str) -> None:
    seen = await same_answers(provider, action="cancel")
    assert seen & {"cancelled", "cancelling", "canceling", "ended", "BATCH_STATE_CANCELLED"}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_connections_key_goes_in_the_providers_header(keyed: Emulator, provider: str) -> None:
    """The emulator requires KEY: the raw poll of a known connection is answered, a wrong key is refused
    with a clear, immediate error through the trigger (the key never appears in it)."""
    async with shared_poller(provider, f"raw_{provider}_wrong") as poller:
        assert isinstance(poller, RawPoller)
    unknown = "batches/unknown" if provider == "gemini" else "batch_unknown"
    trigger = LLMBatchTrigger(provider=provider, conn_id=f"raw_{provider}_wrong", batch_ids=[unknown],
                              poll_interval=0.05)
    event = await first_event(trigger)
    assert event.outcome == WaitOutcome.ERROR and "401" in (event.message or "")
    assert "1 in a row" in (event.message or "") and "nope" not in (event.message or "")


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_unknown_batch_is_reported_gone_through_the_raw_poll(keyed: Emulator, provider: str) -> None:
    unknown = "batches/unknown" if provider == "gemini" else "batch_unknown"
    trigger = LLMBatchTrigger(provider=provider, conn_id=f"raw_{provider}", batch_ids=[unknown], poll_interval=0.05)
    event = await first_event(trigger)
    assert event.outcome == WaitOutcome.ENDED
    assert [e["code"] for e in event.batches[0].errors] == ["batch_not_found"]


async def test_a_burst_of_raw_polls_shares_a_bounded_set_of_connections(emulator: Any) -> None:
    """200 raw polls at once (a triggerer's first round) all answer, over at most MAX_CONNECTIONS sockets."""
    from urllib.parse import urlparse

    from airflow_llm_batch.triggers.raw_poll import MAX_CONNECTIONS
    from tests.triggers.test_shared_backends import open_connections_to

    with OpenAI(base_url=emulator.openai_base_url, api_key="test-key") as client:
        ids = [make_batch(client, rows=1) for _ in range(3)]
    port = urlparse(emulator.openai_base_url).port
    assert port is not None
    before = open_connections_to(port)
    async with shared_poller("openai", "llm_emulator") as poller:
        assert isinstance(poller, RawPoller)
        progress = await asyncio.gather(*(poller.progress(ids[i % 3]) for i in range(200)))
        opened = open_connections_to(port) - before
    assert [p.batch_id for p in progress] == [ids[i % 3] for i in range(200)]
    assert 0 < opened <= MAX_CONNECTIONS


@pytest.mark.parametrize("status", [429, 500])
async def test_rate_limits_and_server_errors_stay_transient(emulator: Any, status: int) -> None:
    """As through the SDK: the connection's retries (3), then the trigger's tolerance; the wait ends well."""
    with OpenAI(base_url=emulator.openai_base_url, api_key="test-key") as client:
        batch_id = make_batch(client)
    emulator.inject_fault(status, count=6, path_prefix=f"/v1/batches/{batch_id}", method="GET")
    try:
        event = await first_event(LLMBatchTrigger(provider="openai", conn_id="llm_emulator", batch_ids=[batch_id],
                                                  poll_interval=0.05))
    finally:
        emulator.clear_faults()
    assert event.outcome == WaitOutcome.ENDED and event.batches[0].provider_status == "completed"
