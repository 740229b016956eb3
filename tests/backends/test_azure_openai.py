"""provider="azure_openai": the OpenAI engine path through AsyncAzureOpenAI, against the emulator."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_llm_batch.hooks import hook_class
from airflow_llm_batch.pipeline.parsing import OutputParser
from airflow_llm_batch.pipeline.render import RequestSpec
from airflow_llm_batch.pipeline.run import BatchRun


async def test_azure_batches_round_trip_with_deployment_urls(emulator: Any, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AZURE_EMULATOR", json.dumps(
        {"conn_type": "azure_openai", "password": "k", "host": emulator.url, "extra": {"api_version": "2024-10-21"}}))
    hook = hook_class("azure_openai")("azure_emulator")
    backend = hook.backend_from_connection(hook.get_connection("azure_emulator"))
    run = BatchRun(tmp_path, backend, tags={"dag_id": "d", "task_id": "t", "run_id": "azure"})
    rows = [{"id": f"a{i}", "text": f"azure {i}"} for i in range(30)]
    manifest = run.prepare_or_load(lambda: rows, RequestSpec(model="my-gpt4o-deployment", prompt="{{ row.text }}",
                                                             key="id"))
    first_line = json.loads((tmp_path / manifest.chunks[0].requests).read_text().splitlines()[0])
    assert first_line["url"] == "/chat/completions"
    await run.submit(manifest)
    while manifest.open_batch_ids:
        await run.poll(manifest)
        await asyncio.sleep(0.05)
    await run.collect(manifest, OutputParser())
    await backend.aclose()
    results = {r.key: r.output for r in run.iter_results(manifest)}
    assert results == {f"a{i}": f"azure {i}" for i in range(30)}
