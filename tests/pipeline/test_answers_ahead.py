"""Collecting ended chunks downloads the next chunk's answers while one is joined and written
(pipeline/answers_ahead.py, collector.py), against the real emulator and OpenAI SDK."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI

from airflow_llm_batch.backends.openai import OpenAIBatchBackend
from airflow_llm_batch.exceptions import ProviderError
from airflow_llm_batch.pipeline import answers_ahead
from airflow_llm_batch.pipeline.answers_ahead import AnswersAhead, TakenOnce
from airflow_llm_batch.pipeline.join import JoinContext, classify_chunk
from airflow_llm_batch.pipeline.key_index import KeyEntry
from airflow_llm_batch.pipeline.manifest import ChunkState, Manifest
from airflow_llm_batch.pipeline.parsing import OutputParser
from airflow_llm_batch.pipeline.render import RequestSpec
from airflow_llm_batch.pipeline.run import BatchRun
from airflow_llm_batch.pipeline.run_folder import RunFolder
from airflow_llm_batch.pipeline.types import RawResult

SPEC = RequestSpec(model="gpt-4o-mini", prompt="{{ row.text }}", key="id")
CHUNKS, PER_CHUNK = 4, 5


class Recording(OpenAIBatchBackend):
    """The OpenAI backend, noting when each batch's results start and finish downloading."""

    events: list[tuple[str, str]]

    async def result_blocks(self, batch_id: str) -> AsyncGenerator[list[RawResult], None]:
        self.events.append(("download", batch_id))
        async for block in super().result_blocks(batch_id):
            for answer in block:  # one answer a block: the hold-back is checked after each block
                self.events.append(("answer", batch_id))
                yield [answer]
        self.events.append(("downloaded", batch_id))


async def _ended_run(emulator: Any, folder: Path, name: str) -> tuple[BatchRun, Manifest, Recording]:
    """A run of CHUNKS chunks whose batches have all ended, not yet collected; store_chunk recorded."""
    backend = Recording(AsyncOpenAI(base_url=emulator.openai_base_url, api_key="k"))
    backend.events = []
    run = BatchRun(folder, backend, tags={"dag_id": "d", "task_id": "t", "run_id": name})
    rows = [{"id": f"{name}-{i:03d}", "text": f"collect me {i}"} for i in range(CHUNKS * PER_CHUNK)]
    manifest = run.prepare_or_load(lambda: rows, SPEC, max_rows_per_chunk=PER_CHUNK)
    await run.submit(manifest)
    while manifest.open_batch_ids:
        await run.poll(manifest)
        await asyncio.sleep(0.05)
    store = run.collector.store_chunk

    def recorded_store(manifest: Manifest, chunk: Any, *args: Any) -> None:
        backend.events.append(("store", str(chunk.batch_id)))
        store(manifest, chunk, *args)
        backend.events.append(("stored", str(chunk.batch_id)))

    run.collector.store_chunk = recorded_store  # type: ignore[method-assign]
    return run, manifest, backend


async def test_the_next_chunk_downloads_while_one_is_stored_and_at_most_two_are_held(
        emulator: Any, tmp_path: Path) -> None:
    run, manifest, backend = await _ended_run(emulator, tmp_path, "ahead")
    await run.collect(manifest, OutputParser())
    await backend.aclose()

    ids = manifest.batch_ids
    events = backend.events
    assert len(ids) == CHUNKS and all(c.state == ChunkState.COLLECTED for c in manifest.chunks)
    assert [b for kind, b in events if kind == "store"] == ids  # stored in the manifest's order
    for earlier, later in itertools.pairwise(ids):  # chunk k+1 was on its way before k was written
        assert events.index(("download", later)) < events.index(("store", earlier))
    held = 0  # answers downloaded or downloading and not yet stored: never more than two chunks
    for kind, _ in events:
        held += {"download": 1, "stored": -1}.get(kind, 0)
        assert held <= 2
    keys = [r.key for r in run.iter_results(manifest)]
    assert sorted(keys) == [f"ahead-{i:03d}" for i in range(CHUNKS * PER_CHUNK)]
    assert {r.status for r in run.iter_results(manifest)} == {"succeeded"}


async def test_with_no_window_each_download_waits_for_the_chunk_before_it(
        emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(answers_ahead, "COLLECT_AHEAD", 0)  # one chunk's answers in memory at a time
    run, manifest, backend = await _ended_run(emulator, tmp_path, "serial")
    await run.collect(manifest, OutputParser())
    await backend.aclose()
    ids = manifest.batch_ids
    for earlier, later in itertools.pairwise(ids):
        assert backend.events.index(("stored", earlier)) < backend.events.index(("download", later))
    assert len(list(run.iter_results(manifest))) == CHUNKS * PER_CHUNK


async def test_a_failed_download_keeps_what_was_stored_and_the_next_collect_finishes(
        emulator: Any, tmp_path: Path) -> None:
    run, manifest, backend = await _ended_run(emulator, tmp_path, "fails")
    third = await backend.client.batches.retrieve(manifest.batch_ids[2])
    emulator.inject_fault(400, count=50, path_prefix=f"/v1/files/{third.output_file_id}", method="GET")
    with pytest.raises(ProviderError, match="downloading results file"):
        await run.collect(manifest, OutputParser())
    states = [c.state for c in manifest.chunks]
    assert states[:2] == [ChunkState.COLLECTED] * 2 and states[2:] == [ChunkState.ENDED] * 2
    stored = [b for kind, b in backend.events if kind == "stored"]
    assert stored == manifest.batch_ids[:2]  # the download after the failure was cancelled, not stored

    emulator.clear_faults()
    await run.collect(manifest, OutputParser())
    await backend.aclose()
    assert all(c.state == ChunkState.COLLECTED for c in manifest.chunks)
    assert len(list(run.iter_results(manifest))) == CHUNKS * PER_CHUNK


async def test_answers_ahead_refuses_a_negative_window_and_says_when_nothing_is_left(emulator: Any) -> None:
    backend = OpenAIBatchBackend(AsyncOpenAI(base_url=emulator.openai_base_url, api_key="k"))
    with pytest.raises(ValueError, match="or more, got -1"):
        AnswersAhead(backend, [], ahead=-1)
    async with AnswersAhead(backend, [("never-downloaded", False)]) as ahead:
        assert await ahead.next() == {}  # a batch without results: nothing is fetched
        with pytest.raises(LookupError):
            await ahead.next()
    await backend.aclose()


async def test_the_download_ahead_holds_at_most_the_slack_beyond_what_the_join_took(
        emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunk k+1 downloads while k is joined, but before k's join starts it holds AHEAD_SLACK answers
    at most: about one chunk's answers in memory, not two; every row still lands."""
    monkeypatch.setattr(answers_ahead, "AHEAD_SLACK", 2)
    monkeypatch.setattr(answers_ahead, "HELD_BACK_POLL", 0.001)
    run, manifest, backend = await _ended_run(emulator, tmp_path, "held")
    await run.collect(manifest, OutputParser())
    await backend.aclose()
    ids, events = manifest.batch_ids, backend.events
    for earlier, later in itertools.pairwise(ids):
        before_join = events[:events.index(("store", earlier))]
        assert ("download", later) in before_join  # on its way before the chunk before it is joined...
        assert before_join.count(("answer", later)) <= 2  # ...but held back at the slack
        assert events.index(("downloaded", later)) > events.index(("store", earlier))
    keys = sorted(r.key for r in run.iter_results(manifest))
    assert keys == [f"held-{i:03d}" for i in range(CHUNKS * PER_CHUNK)]


def test_taken_once_hands_each_answer_out_once_and_the_join_still_counts_the_unmatched() -> None:
    answers = {f"c{i}": RawResult(custom_id=f"c{i}", ok=True, text=f"answer {i}") for i in range(3)}
    view = TakenOnce(dict(answers))
    assert len(view) == 3 and view["c0"].text == "answer 0" and view.taken == 0  # reading takes nothing
    entries = [KeyEntry(custom_id=f"c{i}", key=f"k{i}", row_no=i) for i in (0, 1)]  # c2: no row's answer
    outcome = classify_chunk(entries, view, OutputParser(), JoinContext(batch_id="b1"))
    rows = list(outcome.final_rows())
    assert [(r.key, r.output) for r in rows] == [("k0", "answer 0"), ("k1", "answer 1")]
    assert outcome.unmatched == 1 and view.taken == 2 and len(view) == 3
    assert view.get("c0") is None and view.get("c0", "gone") == "gone"  # handed out once
    assert list(view) == ["c2"] and view.unconsumed() == {"c2": answers["c2"]}
    view.release()  # the chunk is stored: the dict goes (its table kept its full size)
    assert view.finished and list(view) == [] and len(view) == 3


async def test_asking_for_the_next_answers_releases_the_ones_handed_out_before(emulator: Any,
                                                                              tmp_path: Path) -> None:
    _, manifest, backend = await _ended_run(emulator, tmp_path, "release")
    async with AnswersAhead(backend, [(b, True) for b in manifest.batch_ids]) as ahead:
        first = await ahead.next()
        assert len(list(first)) == PER_CHUNK and not first.finished
        second = await ahead.next()
        assert first.finished and list(first) == [] and len(list(second)) == PER_CHUNK
    await backend.aclose()


async def test_a_collect_reads_the_batches_this_task_cancelled_once_not_per_chunk(
        emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each read asks the task state (a supervisor round trip; a 404 while none was written, whose exception
    kept the chunk's join alive in a reference cycle under ``dags test``): once per collect."""
    run, manifest, backend = await _ended_run(emulator, tmp_path, "once")
    reads: list[str] = []
    read = RunFolder.cancelled_by_us

    def counted(folder: RunFolder) -> list[str]:
        reads.append("read")
        return read(folder)

    monkeypatch.setattr(RunFolder, "cancelled_by_us", counted)
    await run.collect(manifest, OutputParser())
    await backend.aclose()
    assert len(manifest.batch_ids) == CHUNKS and reads == ["read"]
    assert len(list(run.iter_results(manifest))) == CHUNKS * PER_CHUNK
