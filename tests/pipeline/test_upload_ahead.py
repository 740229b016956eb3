"""The submitter uploads the next chunk's file while the current chunk's batch is created
(pipeline/upload_ahead.py), and every create still follows its saved intent: counted on the emulator."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI

from airflow_llm_batch.backends.openai import OpenAIBatchBackend
from airflow_llm_batch.pipeline.backend import OpenChunk
from airflow_llm_batch.pipeline.manifest import ChunkState, ManifestStore
from airflow_llm_batch.pipeline.policy import Admission
from airflow_llm_batch.pipeline.render import RequestSpec
from airflow_llm_batch.pipeline.run import BatchRun
from airflow_llm_batch.pipeline.upload_ahead import stages

SPEC = RequestSpec(model="gpt-4o-mini", prompt="{{ row.text }}", key="id")
CHUNKS, PER_CHUNK = 3, 4


class WorkerDied(Exception):
    """The simulated crash: the batch exists at the provider, its id was never recorded."""


class Recording(OpenAIBatchBackend):
    """The OpenAI backend, noting each upload and create as it starts; dies after create ``crash_on``."""

    events: list[tuple[str, str]]
    crash_on: int | None = None

    async def upload(self, open_chunk: OpenChunk, tags: dict[str, str]) -> str:
        self.events.append(("upload", tags["chunk"]))
        return await super().upload(open_chunk, tags)

    async def create_uploaded(self, file_id: str, open_chunk: OpenChunk, tags: dict[str, str]) -> str:
        self.events.append(("create", tags["chunk"]))
        batch_id = await super().create_uploaded(file_id, open_chunk, tags)
        if sum(kind == "create" for kind, _ in self.events) == self.crash_on:
            raise WorkerDied(batch_id)
        return batch_id


def backend_for(emulator: Any, crash_on: int | None = None) -> Recording:
    backend = Recording(AsyncOpenAI(base_url=emulator.openai_base_url, api_key="k"))
    backend.events, backend.crash_on = [], crash_on
    return backend


def rows(prefix: str) -> list[dict[str, str]]:
    return [{"id": f"{prefix}-{i:03d}", "text": f"upload me {i}"} for i in range(CHUNKS * PER_CHUNK)]


def sent_since(emulator: Any, before: dict[str, Any], prefix: str) -> Counter[str]:
    after = emulator.stats()["openai"]["requests_by_custom_id"]
    return Counter({k: v - before["requests_by_custom_id"].get(k, 0) for k, v in after.items()
                    if k.startswith(prefix) and v - before["requests_by_custom_id"].get(k, 0)})


async def test_the_next_file_is_uploading_before_the_current_batch_is_created(emulator: Any, tmp_path: Path) -> None:
    backend = backend_for(emulator)
    run = BatchRun(tmp_path, backend, tags={"dag_id": "d", "task_id": "t", "run_id": "ahead"})
    manifest = run.prepare_or_load(lambda: rows("up"), SPEC, max_rows_per_chunk=PER_CHUNK)
    before = emulator.stats()["openai"]
    await run.submit(manifest)
    await backend.aclose()

    after = emulator.stats()["openai"]
    names = [f"{i:05d}" for i in range(CHUNKS)]
    for current, following in itertools.pairwise(names):
        assert backend.events.index(("upload", following)) < backend.events.index(("create", current))
    assert [n for kind, n in backend.events if kind == "create"] == names  # one create at a time, in order
    assert after["files_uploaded"] - before["files_uploaded"] == CHUNKS  # each file once, none wasted
    assert after["batches_created"] - before["batches_created"] == CHUNKS
    assert sent_since(emulator, before, "up-") == Counter({r["id"]: 1 for r in rows("up")})
    assert [c.state for c in manifest.chunks] == [ChunkState.SUBMITTED] * CHUNKS


async def test_a_crash_between_two_overlapped_creates_resumes_paying_nothing_twice(
        emulator: Any, tmp_path: Path) -> None:
    tags = {"dag_id": "d", "task_id": "t", "run_id": "crash"}
    dying = backend_for(emulator, crash_on=2)  # chunk 1's batch is created, its id never recorded
    run = BatchRun(tmp_path, dying, tags=tags)
    manifest = run.prepare_or_load(lambda: rows("cr"), SPEC, max_rows_per_chunk=PER_CHUNK)
    before = emulator.stats()["openai"]
    try:
        await run.submit(manifest)
        raise AssertionError("the worker should have died")
    except WorkerDied:
        pass
    await dying.aclose()
    saved = ManifestStore(tmp_path).load()
    assert saved is not None
    assert [c.state for c in saved.chunks] == [ChunkState.SUBMITTED, ChunkState.SUBMITTING, ChunkState.PREPARED]

    backend = backend_for(emulator)  # the next try, from the saved manifest
    again = BatchRun(tmp_path, backend, tags=tags)
    resumed = again.prepare_or_load(lambda: rows("cr"), SPEC, max_rows_per_chunk=PER_CHUNK)
    created = await again.submit(resumed)
    await backend.aclose()

    after = emulator.stats()["openai"]
    assert len(created) == 1 and [n for kind, n in backend.events if kind == "create"] == ["00002"]
    assert after["batches_created"] - before["batches_created"] == CHUNKS  # chunk 1 re-attached by its tag
    assert sent_since(emulator, before, "cr-") == Counter({r["id"]: 1 for r in rows("cr")})
    assert [c.state for c in resumed.chunks] == [ChunkState.SUBMITTED] * CHUNKS


async def test_nothing_is_uploaded_ahead_for_a_chunk_admission_holds_back(emulator: Any, tmp_path: Path) -> None:
    backend = backend_for(emulator)
    run = BatchRun(tmp_path, backend, tags={"dag_id": "d", "task_id": "t", "run_id": "held"},
                   admission=Admission(max_open_batches=1))
    manifest = run.prepare_or_load(lambda: rows("hb"), SPEC, max_rows_per_chunk=PER_CHUNK)
    before = emulator.stats()["openai"]
    assert len(await run.submit(manifest)) == 1
    await backend.aclose()
    after = emulator.stats()["openai"]
    assert backend.events == [("upload", "00000"), ("create", "00000")]
    assert after["files_uploaded"] - before["files_uploaded"] == 1


def test_only_a_backend_class_that_uploads_and_creates_apart_is_staged(emulator: Any) -> None:
    class Wrapper:  # forwards attributes but overrides submit: must be used through submit
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    inner = OpenAIBatchBackend(AsyncOpenAI(base_url=emulator.openai_base_url, api_key="k"))
    assert stages(inner) and not stages(Wrapper(inner))
