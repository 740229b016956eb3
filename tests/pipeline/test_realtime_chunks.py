"""Prepared chunks answered in real time (pipeline/realtime_chunks.py) against the bundled emulator:
joined like a batch's results, never turned into a batch (and a chunk with a batch intent never sent
in real time), and a try stopped by the circuit breaker resumed by sending only the unanswered rows
(counted by the emulator)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI

from airflow_llm_batch.backends.openai import OpenAIBatchBackend
from airflow_llm_batch.emulator import Emulator, EmulatorConfig
from airflow_llm_batch.pipeline.manifest import ChunkState
from airflow_llm_batch.pipeline.parsing import OutputParser
from airflow_llm_batch.pipeline.realtime_chunks import REALTIME, answer_in_realtime, claim_for_realtime, pending
from airflow_llm_batch.pipeline.render import RequestSpec
from airflow_llm_batch.pipeline.run import BatchRun
from airflow_llm_batch.pipeline.types import RawResult
from airflow_llm_batch.realtime.runner import CallFailed, RunnerSettings

SPEC = RequestSpec(model="gpt-4o-mini", prompt="{{ row.text }}", key="id")
TAGS = {"dag_id": "d", "task_id": "t", "run_id": "r"}
PARSER = OutputParser()


def rows(count: int) -> list[dict[str, Any]]:
    return [{"id": f"k{i:03d}", "text": f"real-time {i}"} for i in range(count)]


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(validating_seconds=0.05, requests_per_second=20_000.0,
                                 finalizing_seconds=0.05)) as emulator:
        yield emulator


class StopsAfter(OpenAIBatchBackend):
    """The real backend, refused for good (as a revoked key is) after ``answers`` real-time answers."""

    answers = 15

    async def realtime_send(self, request_line: dict[str, Any]) -> RawResult:
        if self.answers <= 0:
            raise CallFailed("authentication_error", "HTTP 401: the key was revoked")
        self.answers -= 1
        return await super().realtime_send(request_line)


def backend(emu: Emulator, cls: type[OpenAIBatchBackend] = OpenAIBatchBackend) -> OpenAIBatchBackend:
    return cls(AsyncOpenAI(base_url=emu.openai_base_url, api_key="k"))


async def test_claimed_chunks_are_joined_like_a_batch_and_never_become_one(emu: Emulator, tmp_path: Path) -> None:
    emu.reset_stats()
    client = backend(emu)
    run = BatchRun(tmp_path, client, tags=TAGS)
    manifest = run.prepare_or_load(lambda: rows(30), SPEC, max_rows_per_chunk=10)
    first = manifest.chunks[0]  # a batch intent recorded by an earlier try: stays on the batch path
    first.state, first.tag, first.intent_at = ChunkState.SUBMITTING, "llmb-test-00000", time.time()
    assert claim_for_realtime(manifest, run.store) == 20
    assert [c.path for c in manifest.chunks] == [None, REALTIME, REALTIME]
    report = await answer_in_realtime(run, manifest, PARSER, RunnerSettings(max_concurrency=4))
    assert report.answered == 20 and not pending(manifest)
    assert await run.submit(manifest) != []  # the intent's chunk is sent as a batch, the others never
    while not manifest.is_done:
        await run.poll(manifest)
        await run.collect(manifest, PARSER)
        run.finalize(manifest, PARSER)
    await client.aclose()
    results = {r.key: r for r in run.iter_results(manifest)}
    assert {k: r.output for k, r in results.items()} == {r["id"]: r["text"] for r in rows(30)}
    assert sorted(r.answered_by for r in results.values()) == ["batch"] * 10 + ["realtime"] * 20
    assert emu.stats()["openai"]["batches_created"] == 1
    assert emu.stats()["realtime"]["answered"] == 20
    assert run.summary(manifest).rows_by_path == {"batch": 10, "realtime": 20, "cache": 0}


async def test_a_stopped_try_resumes_sending_only_the_unanswered_rows(emu: Emulator, tmp_path: Path) -> None:
    emu.reset_stats()
    stopping = backend(emu, StopsAfter)
    run = BatchRun(tmp_path, stopping, tags=TAGS)
    manifest = run.prepare_or_load(lambda: rows(40), SPEC, max_rows_per_chunk=25)
    claim_for_realtime(manifest, run.store)
    report = await answer_in_realtime(run, manifest, PARSER, RunnerSettings(max_concurrency=1))
    await stopping.aclose()
    assert report.breaker is not None and report.breaker.code == "authentication_error"
    assert report.answered == 15 and emu.stats()["realtime"]["answered"] == 15
    assert len(pending(run.store.load() or manifest)) == 2  # nothing stored as failed: the rows wait

    client = backend(emu)
    resumed = BatchRun(tmp_path, client, tags=TAGS)
    again = resumed.prepare_or_load(lambda: rows(40), SPEC, max_rows_per_chunk=25)  # the next try
    assert [c.path for c in again.chunks] == [REALTIME, REALTIME]  # re-attached, not prepared afresh
    report = await answer_in_realtime(resumed, again, PARSER, RunnerSettings(max_concurrency=4))
    resumed.finalize(again, PARSER)
    await client.aclose()
    assert report.already_answered == 15 and report.answered == 40 - 15
    stats = emu.stats()["realtime"]
    assert stats["answered"] == 40 and stats["bodies_paid_twice"] == 0  # 25 more: only the rest was sent
    assert stats["answered_by_custom_id"] == {r["id"]: 1 for r in rows(40)}
    assert again.is_done and {r.key for r in resumed.iter_results(again)} == {r["id"] for r in rows(40)}
