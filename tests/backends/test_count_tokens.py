"""The count-tokens clients (backends/count_tokens.py) on the emulator's count-tokens endpoints: the
count is what the same request is then billed, each call is counted, and a failed count falls back."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from google import genai
from google.genai import types

from airflow_llm_batch.backends.count_tokens import anthropic_count, gemini_count
from airflow_llm_batch.emulator import Emulator, EmulatorConfig
from airflow_llm_batch.pipeline.api_estimate import count_with_api
from airflow_llm_batch.pipeline.manifest import ChunkRecord
from airflow_llm_batch.pipeline.tokens import estimate_tokens

TEXT = "The parcel arrived two weeks late and the box was crushed; I want a refund."
SYSTEM = "Classify the complaint."


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig()) as emulator:
        yield emulator


def test_anthropic_count_is_the_billed_input(emu: Emulator) -> None:
    params: dict[str, Any] = {"model": "claude-haiku-4-5", "max_tokens": 50, "system": SYSTEM,
                              "messages": [{"role": "user", "content": TEXT}]}

    async def count() -> int:
        async with anthropic.AsyncAnthropic(base_url=emu.anthropic_base_url, api_key="k", max_retries=0) as client:
            return await anthropic_count(client, {"custom_id": "r1", "params": params})

    counted = asyncio.run(count())
    billed = anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="k").messages.create(**params)
    assert counted == billed.usage.input_tokens > 0
    assert emu.stats()["realtime"]["count_tokens_calls"] == 1


def test_gemini_count_is_the_billed_prompt_with_the_system_instruction(emu: Emulator) -> None:
    request = {"model": "models/gemini-2.5-flash", "contents": [{"role": "user", "parts": [{"text": TEXT}]}],
               "systemInstruction": {"parts": [{"text": SYSTEM}]}}
    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=emu.url))
    counted = asyncio.run(gemini_count(client, {"key": "r1", "request": request}))
    billed = client.models.generate_content(model="gemini-2.5-flash", contents=TEXT,
                                            config=types.GenerateContentConfig(system_instruction=SYSTEM))
    assert billed.usage_metadata is not None and counted == billed.usage_metadata.prompt_token_count
    assert emu.stats()["realtime"]["count_tokens_calls"] == 1


class _Failing:
    async def count_tokens(self, request_line: dict[str, Any]) -> int:
        raise ConnectionError("down")


def test_a_failed_count_keeps_the_tokenizers_and_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    line = json.dumps({"custom_id": "r1", "params": {"messages": [{"role": "user", "content": TEXT}]}}).encode()
    (tmp_path / "c.jsonl").write_bytes(line + b"\n" + line + b"\n")
    chunk = ChunkRecord(index=0, count=2, bytes=0, requests="c.jsonl", keys="k.jsonl", tokens=0)
    caplog.set_level(logging.INFO, logger="airflow_llm_batch")
    asyncio.run(count_with_api(_Failing(), tmp_path, [chunk], "anthropic"))
    assert chunk.tokens == 2 * estimate_tokens(line)
    assert "2 request line(s) could not be counted by anthropic (first: ConnectionError)" in caplog.text
    assert TEXT not in caplog.text


def test_a_backend_without_an_endpoint_keeps_the_tokenizers_count(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    chunk = ChunkRecord(index=0, count=1, bytes=0, requests="absent.jsonl", keys="k.jsonl", tokens=7)
    caplog.set_level(logging.INFO, logger="airflow_llm_batch")
    asyncio.run(count_with_api(object(), tmp_path, [chunk], "openai"))
    assert chunk.tokens == 7 and "openai has no count-tokens endpoint" in caplog.text
