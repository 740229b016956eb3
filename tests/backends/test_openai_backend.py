"""OpenAIBatchBackend against the bundled emulator: what a failed results download says."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from openai import AsyncOpenAI

from airflow_llm_batch.backends.openai import OpenAIBatchBackend
from airflow_llm_batch.exceptions import ProviderError


async def _completed_batch(client: AsyncOpenAI) -> str:
    lines = [{"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"hi {i}"}]}}
             for i in range(3)]
    uploaded = await client.files.create(file=("in.jsonl", "".join(json.dumps(x) + "\n" for x in lines).encode()),
                                         purpose="batch")
    batch = await client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                        completion_window="24h")
    while batch.status != "completed":
        await asyncio.sleep(0.05)
        batch = await client.batches.retrieve(batch.id)
    return batch.id


async def test_a_results_download_failing_past_the_client_retries_says_what_happens_next(emulator: Any) -> None:
    client = AsyncOpenAI(base_url=emulator.openai_base_url, api_key="test-key", max_retries=1)
    backend = OpenAIBatchBackend(client)
    try:
        batch_id = await _completed_batch(client)
        emulator.inject_fault(500, count=2, path_prefix="/v1/files/", method="GET")
        with pytest.raises(ProviderError) as caught:
            _ = [answer async for answer in backend.results(batch_id)]
        message = str(caught.value)
        assert f"of batch {batch_id} failed after the client's 1 retries" in message
        assert "nothing is resubmitted or paid twice" in message and caught.value.status_code == 500
        assert len([answer async for answer in backend.results(batch_id)]) == 3  # the next try gets them all
    finally:
        await backend.aclose()
