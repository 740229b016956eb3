"""The official openai SDK's async client against the emulator, in a thread and in-loop."""

from __future__ import annotations

import asyncio
from typing import Any

import openai

from airflow_llm_batch.emulator import AsyncEmulator, Emulator, EmulatorConfig


async def _round_trip(client: openai.AsyncOpenAI, h: Any, prefix: str) -> None:
    records = [h.chat_line(f"{prefix}{i}", f"async {i}") for i in range(10)]
    uploaded = await client.files.create(file=("in.jsonl", h.jsonl(records)), purpose="batch")
    created = await client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"run": prefix},
    )
    batch = await h.wait_openai_async(client, created.id)
    assert batch.status == "completed"
    assert batch.metadata == {"run": prefix}
    content = await client.files.content(batch.output_file_id)
    answers = {
        line["custom_id"]: line["response"]["body"]["choices"][0]["message"]["content"]
        for line in h.parse_jsonl(content.content)
    }
    assert answers == {f"{prefix}{i}": f"async {i}" for i in range(10)}
    listed = [b.id async for b in client.batches.list(limit=2)]
    assert created.id in listed


async def test_async_client_against_threaded_emulator(emulator: Emulator, h: Any) -> None:
    async with openai.AsyncOpenAI(base_url=emulator.openai_base_url, api_key="k", max_retries=0) as client:
        await _round_trip(client, h, "thread-")


async def test_async_client_against_in_loop_emulator(h: Any, fast_config: EmulatorConfig) -> None:
    async with AsyncEmulator(fast_config) as emu:
        async with openai.AsyncOpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as client:
            await asyncio.gather(_round_trip(client, h, "a-"), _round_trip(client, h, "b-"))
        stats = emu.stats()["openai"]
        assert stats["batches_created"] == 2
        assert sum(stats["requests_by_custom_id"].values()) == 20
    assert not emu.running


async def test_async_cancel(h: Any, fast_config: EmulatorConfig) -> None:
    async with AsyncEmulator(fast_config.replace(validating_seconds=0.0, requests_per_second=10.0)) as emu:
        async with openai.AsyncOpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as client:
            uploaded = await client.files.create(
                file=("in.jsonl", h.jsonl(h.chat_line(f"c{i}", "x") for i in range(50))), purpose="batch"
            )
            created = await client.batches.create(
                input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            await asyncio.sleep(0.2)
            assert (await client.batches.cancel(created.id)).status == "cancelling"
            final = await h.wait_openai_async(client, created.id)
            assert final.status == "cancelled"
            assert final.request_counts.completed < 50
