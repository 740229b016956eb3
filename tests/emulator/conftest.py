"""Fixtures for the emulator tests: running emulators, SDK clients and small helpers.

Every emulator started here is stopped by its fixture; clients are closed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import anthropic
import openai
import pytest

from airflow_llm_batch.emulator import Emulator, EmulatorConfig

FAST = EmulatorConfig(
    validating_seconds=0.05,
    requests_per_second=5000.0,
    finalizing_seconds=0.05,
    cancelling_seconds=0.05,
)
"""Fast pacing for tests that only need batches to finish."""

OPENAI_TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


@pytest.fixture(scope="session")
def fast_config() -> EmulatorConfig:
    return FAST


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator(FAST) as emu:
        yield emu


@pytest.fixture
def start_emulator() -> Iterator[Callable[..., Emulator]]:
    """Start an extra emulator with config overrides; all are stopped after the test."""
    started: list[Emulator] = []

    def start(**overrides: Any) -> Emulator:
        emu = Emulator(FAST.replace(**overrides))
        emu.start()
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()


@pytest.fixture(scope="module")
def oai(emulator: Emulator) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=emulator.openai_base_url, api_key="test-key", max_retries=0)
    yield client
    client.close()


@pytest.fixture(scope="module")
def claude(emulator: Emulator) -> Iterator[anthropic.Anthropic]:
    client = anthropic.Anthropic(base_url=emulator.anthropic_base_url, api_key="test-key", max_retries=0)
    yield client
    client.close()


def jsonl(records: Iterable[Mapping[str, Any] | str]) -> bytes:
    """JSONL bytes; a str record is written verbatim (to make broken lines)."""
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode()


def chat_line(custom_id: str, text: str, model: str = "gpt-4o-mini", **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": text}], **body},
    }


def parse_jsonl(data: bytes | str) -> list[dict[str, Any]]:
    text = data.decode() if isinstance(data, bytes) else data
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def wait_openai(client: openai.OpenAI, batch_id: str, timeout: float = 20.0) -> Any:
    """Poll until the batch reaches a terminal status."""
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in OPENAI_TERMINAL or time.monotonic() > deadline:
            return batch
        time.sleep(0.03)


async def wait_openai_async(client: openai.AsyncOpenAI, batch_id: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        batch = await client.batches.retrieve(batch_id)
        if batch.status in OPENAI_TERMINAL or time.monotonic() > deadline:
            return batch
        await asyncio.sleep(0.03)


def wait_anthropic(client: anthropic.Anthropic, batch_id: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended" or time.monotonic() > deadline:
            return batch
        time.sleep(0.03)


async def wait_anthropic_async(client: anthropic.AsyncAnthropic, batch_id: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        batch = await client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended" or time.monotonic() > deadline:
            return batch
        await asyncio.sleep(0.03)


def run_openai_batch(client: openai.OpenAI, records: Iterable[Mapping[str, Any] | str], endpoint: str) -> Any:
    """Upload ``records``, create a batch and wait for it to end."""
    uploaded = client.files.create(file=("input.jsonl", jsonl(records)), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint=endpoint, completion_window="24h")  # type: ignore[arg-type]
    return wait_openai(client, batch.id)


class Helpers:
    """The helpers above, handed to tests through the ``h`` fixture."""

    jsonl = staticmethod(jsonl)
    chat_line = staticmethod(chat_line)
    parse_jsonl = staticmethod(parse_jsonl)
    wait_openai = staticmethod(wait_openai)
    wait_openai_async = staticmethod(wait_openai_async)
    wait_anthropic = staticmethod(wait_anthropic)
    wait_anthropic_async = staticmethod(wait_anthropic_async)
    run_openai_batch = staticmethod(run_openai_batch)


@pytest.fixture(scope="session")
def h() -> type[Helpers]:
    return Helpers
