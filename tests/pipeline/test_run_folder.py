"""A run folder is read and written without any backend or SDK client (run_folder.RunFolder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openai import AsyncOpenAI

from airflow_llm_batch.backends.openai import OpenAIBatchBackend
from airflow_llm_batch.pipeline.render import RequestSpec
from airflow_llm_batch.pipeline.run import BatchRun
from airflow_llm_batch.pipeline.run_folder import CANCELLED_FILE, RunFolder
from tests.run_helpers import drive

SPEC = RequestSpec(model="gpt-4o-mini", prompt="{{ row.text }}", key="id")


def test_an_empty_folder_has_no_manifest_and_remembers_cancelled_batches(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    assert folder.load() is None and folder.cancelled_by_us() == []
    folder.remember_cancelled(["b2", "b1"])
    folder.remember_cancelled(["b1", "b3"])
    assert folder.cancelled_by_us() == ["b1", "b2", "b3"] and (tmp_path / CANCELLED_FILE).exists()


async def test_a_finished_run_is_read_from_its_folder_alone(emulator: Any, tmp_path: Path) -> None:
    rows = [{"id": f"folder-only-{i:02d}", "text": f"read me back {i}"} for i in range(12)]
    backend = OpenAIBatchBackend(AsyncOpenAI(base_url=emulator.openai_base_url, api_key="k"))
    run = BatchRun(tmp_path, backend, tags={"dag_id": "d", "task_id": "t", "run_id": "folder-only"})
    manifest = run.prepare_or_load(lambda: rows, SPEC)
    await run.submit(manifest)
    await drive(run, manifest)
    await backend.aclose()

    folder = RunFolder(tmp_path)  # no backend, no client
    loaded = folder.load()
    assert loaded is not None and loaded.is_done and loaded.batch_ids == manifest.batch_ids
    assert [r.to_dict() for r in folder.iter_results(loaded)] == [r.to_dict() for r in run.iter_results(manifest)]
    assert folder.summary(loaded) == run.summary(manifest)
    assert folder.summary(loaded).succeeded == len(rows)
