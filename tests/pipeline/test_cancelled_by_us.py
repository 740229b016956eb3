"""Batches the task cancelled itself (on_kill, timeout) are resent on the next try; answered rows kept."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI

from airflow_llm_batch.backends.openai import OpenAIBatchBackend
from airflow_llm_batch.emulator import FaultPlan
from airflow_llm_batch.pipeline.render import RequestSpec
from airflow_llm_batch.pipeline.run import BatchRun
from tests.run_helpers import drive

ROWS = [{"id": f"k{i:03d}", "text": f"kill test {i}"} for i in range(200)]
SPEC = RequestSpec(model="gpt-4o-mini", prompt="{{ row.text }}", key="id")


async def drive_stored(run: BatchRun) -> Any:
    manifest = run.store.load()
    assert manifest is not None
    return await drive(run, manifest)


async def test_rows_of_a_batch_we_cancelled_are_resent_and_answered_rows_kept(emulator: Any, tmp_path: Path) -> None:
    tags = {"dag_id": "d", "task_id": "t", "run_id": "kill"}
    emulator.set_fault_plan(FaultPlan(slow_factor=2000))  # ~10 req/s: mid-way when cancelled
    try:
        backend = OpenAIBatchBackend(AsyncOpenAI(base_url=emulator.openai_base_url, api_key="k"))
        run = BatchRun(tmp_path, backend, tags=tags)
        manifest = run.prepare_or_load(lambda: ROWS, SPEC)
        (batch_id,) = await run.submit(manifest)
        await asyncio.sleep(1.5)
        run.remember_cancelled([batch_id])  # what on_kill does before cancelling
        await backend.cancel(batch_id)
    finally:
        emulator.clear_fault_plan()
    manifest = await drive_stored(BatchRun(tmp_path, backend, tags=tags))  # the next try
    await backend.aclose()
    results = list(BatchRun(tmp_path, backend, tags=tags).iter_results(manifest))
    assert sorted(r.key for r in results) == [r["id"] for r in ROWS]
    assert {r.status.value for r in results} == {"succeeded"}
    first_try = [r for r in results if r.batch_id == batch_id]
    resent = [r for r in results if r.batch_id != batch_id]
    assert first_try and resent, "some rows were answered before the cancel, the rest resent"
    assert all(r.attempts == 2 for r in resent)
    paid = emulator.stats()["openai"]["succeeded_by_custom_id"]
    assert all(paid[r["id"]] == 1 for r in ROWS)
