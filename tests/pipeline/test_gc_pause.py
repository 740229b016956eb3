"""The cyclic garbage collector is paused while a run's answers are held and joined (gc_pause.py),
and is back on afterwards, also when the work fails."""

from __future__ import annotations

import contextlib
import gc
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI

from airflow_llm_batch.backends.openai import OpenAIBatchBackend
from airflow_llm_batch.pipeline.collector import Collector
from airflow_llm_batch.pipeline.gc_pause import gc_paused
from airflow_llm_batch.pipeline.render import RequestSpec
from airflow_llm_batch.pipeline.run import BatchRun
from tests.run_helpers import drive

SPEC = RequestSpec(model="gpt-4o-mini", prompt="{{ row.text }}", key="id")


def test_a_pause_restores_the_collector_also_on_error_and_nested() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner pause does not turn it back on early
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_pause_leaves_a_disabled_collector_disabled() -> None:
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


async def test_chunks_are_joined_with_the_collector_paused(emulator: Any, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    store_chunk = Collector.store_chunk

    def recording(self: Collector, *args: Any) -> None:
        seen.append(gc.isenabled())
        store_chunk(self, *args)

    monkeypatch.setattr(Collector, "store_chunk", recording)
    assert await _nine_rows_run(emulator, tmp_path, "gc-pause", max_rows_per_chunk=4, paused=False) == 9
    assert gc.isenabled()  # back on after the collects
    assert seen and not any(seen), seen  # 3 chunks of 4, 4 and 1 rows, each joined with the collector paused


async def _nine_rows_run(emulator: Any, tmp_path: Path, run_id: str, *, max_rows_per_chunk: int,
                         paused: bool) -> int:
    """Nine rows sent and driven to their end against the emulator (``paused``: the whole run inside one
    more pause); returns how many succeeded."""
    rows = [{"id": f"{run_id}-{i:02d}", "text": f"row {i}"} for i in range(9)]
    backend = OpenAIBatchBackend(AsyncOpenAI(base_url=emulator.openai_base_url, api_key="k"))
    run = BatchRun(tmp_path, backend, tags={"dag_id": "d", "task_id": "t", "run_id": run_id})
    manifest = run.prepare_or_load(lambda: rows, SPEC, max_rows_per_chunk=max_rows_per_chunk)
    await run.submit(manifest)
    try:
        with gc_paused() if paused else contextlib.nullcontext():
            await drive(run, manifest)
    finally:
        await backend.aclose()
    return run.summary(manifest).succeeded


class _Cycle:
    """An object in a reference cycle: freed only by the cyclic collector."""

    def __init__(self) -> None:
        self.me = self


async def test_cycles_made_while_a_chunk_is_stored_are_freed_before_the_next_chunk(
        emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under the pause, garbage in cycles (made by any code while a chunk is stored) is collected between
    chunks (gc_pause.collect_young), so a long collect of many chunks does not pile it up."""
    import weakref

    made: list[list[weakref.ref[_Cycle]]] = []
    still_alive: list[int] = []
    store_chunk = Collector.store_chunk

    def making_cycles(self: Collector, *args: Any) -> None:
        still_alive.append(sum(ref() is not None for refs in made for ref in refs))  # from the chunks before
        made.append([weakref.ref(_Cycle()) for _ in range(200)])
        store_chunk(self, *args)

    monkeypatch.setattr(Collector, "store_chunk", making_cycles)
    # as if the whole run were one long pause: only collect_young can free the cycles
    assert await _nine_rows_run(emulator, tmp_path, "gc-young", max_rows_per_chunk=3, paused=True) == 9
    assert len(made) == 3 and still_alive == [0, 0, 0]
