"""Landing copies a results file priced at collect as it is: byte-identical to what the record path
lands from the same run collected unpriced (as before this change), for every price at land, sink
option and kind of row (failed, carried columns, repeats, cached, real-time, an older resumed run).

Each case collects the same ended batches twice, in two copies of one workspace: unpriced (the
reference: what a run collected before rows were priced at collect gives) and priced."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI

from airflow_llm_batch.backends.openai import OpenAIBatchBackend
from airflow_llm_batch.emulator import FaultPlan
from airflow_llm_batch.operators.landing import collect_price, land_results, with_row_cost
from airflow_llm_batch.pipeline import fast_json
from airflow_llm_batch.pipeline.cache import AnswerCache
from airflow_llm_batch.pipeline.manifest import ChunkState, Manifest
from airflow_llm_batch.pipeline.parsing import OutputParser
from airflow_llm_batch.pipeline.policy import RetryPolicy
from airflow_llm_batch.pipeline.prices import ModelPrice, PriceTable
from airflow_llm_batch.pipeline.realtime_chunks import answer_in_realtime, claim_for_realtime
from airflow_llm_batch.pipeline.record_cost import price_note
from airflow_llm_batch.pipeline.render import RequestSpec
from airflow_llm_batch.pipeline.run import BatchRun
from airflow_llm_batch.pipeline.run_folder import ResultLines, RunFolder
from airflow_llm_batch.realtime.runner import RunnerSettings
from airflow_llm_batch.sinks import LandingContext
from airflow_llm_batch.sinks.object_storage import ObjectStorageSink
from airflow_llm_batch.sinks.xcom import as_xcom
from tests.operators.test_landing_records import RowsOnly

PRICE = PriceTable.default().price_for("openai", "gpt-4o-mini")
assert PRICE is not None
CHANGED = replace(PRICE, batch_output=PRICE.batch_output * 3, output=PRICE.output * 2)
CONTEXT = LandingContext(dag_id="d", task_id="t", run_id="r", provider="openai", model="gpt-4o-mini")
SPEC = RequestSpec(model="gpt-4o-mini", prompt="{{ row.text }}", key="id")
PARSER = OutputParser()
CARRY = ("team", "when")


class Copying(ObjectStorageSink):
    """The object storage sink, noting which results files it was given to copy whole."""

    copied: list[ResultLines]

    def write_records(self, records: Any, context: LandingContext) -> dict[str, Any]:
        self.copied = []

        def seen() -> Iterator[Any]:
            for item in records:
                if isinstance(item, ResultLines):
                    self.copied.append(item)
                yield item

        return super().write_records(seen(), context)


def _backend(emulator: Any) -> OpenAIBatchBackend:
    return OpenAIBatchBackend(AsyncOpenAI(base_url=emulator.openai_base_url, api_key="k"))


def _run(folder: Path, emulator: Any, cache: AnswerCache | None) -> BatchRun:
    return BatchRun(folder, _backend(emulator), tags={"dag_id": "d", "task_id": "t", "run_id": "copy"},
                    policy=RetryPolicy(max_attempts=1), cache=cache)


def _rows(texts: list[str]) -> list[dict[str, Any]]:
    return [{"id": f"r{i:03d}", "text": t, "team": ["ops", "web", None][i % 3], "when": f"2026-12-0{i % 9 + 1}"}
            for i, t in enumerate(texts)]


async def _until_ended(run: BatchRun, manifest: Manifest) -> None:
    """Submit and poll until every chunk's batch ended (nothing collected)."""
    while any(c.state in (ChunkState.PREPARED, ChunkState.SUBMITTING, ChunkState.SUBMITTED) for c in manifest.chunks):
        await run.submit(manifest)
        await run.poll(manifest)
        await asyncio.sleep(0.05)


async def _collect(folder: Path, emulator: Any, cache: AnswerCache | None, price: ModelPrice | None) -> Manifest:
    run = _run(folder, emulator, cache)
    manifest = run.store.load()
    assert manifest is not None
    run.collector.price = price
    await run.collect(manifest, PARSER)
    run.finalize(manifest, PARSER)
    await run.backend.aclose()
    assert manifest.is_done
    return manifest


def _land(folder: Path, out: Path, price: ModelPrice | None, **options: Any) -> tuple[bytes, Copying]:
    run_folder = RunFolder(folder)
    manifest = run_folder.load()
    assert manifest is not None
    sink = Copying(f"file://{out}", **options)
    land_results(sink, run_folder, manifest, price, CONTEXT)
    side = out.with_name(out.stem + ".failures.jsonl")
    return out.read_bytes() + (b"--\n" + side.read_bytes() if side.exists() else b""), sink


def _same_landing(reference: Path, priced: Path, out: Path) -> int:
    """Land both workspaces every way; assert the same bytes each time; return the files copied whole."""
    copied = 0
    for name, price in (("same", PRICE), ("changed", CHANGED), ("unknown", None)):
        for options in ({}, {"failures": "separate"}, {"format": "parquet"}):
            tag = f"{name}-{'-'.join(f'{k}{v}' for k, v in options.items())}"
            want, _ = _land(reference, out / f"ref-{tag}.out", price, **options)
            got, sink = _land(priced, out / f"new-{tag}.out", price, **options)
            assert got == want, tag
            copied += len(sink.copied)
            assert not sink.copied or (price is PRICE and not options)
        rows_want, rows_got = RowsOnly(out / f"ref-rows-{name}.jsonl"), RowsOnly(out / f"new-rows-{name}.jsonl")
        for sink, folder in ((rows_want, reference), (rows_got, priced)):
            run_folder = RunFolder(folder)
            land_results(sink, run_folder, run_folder.load(), price, CONTEXT)  # type: ignore[arg-type]
        assert (out / f"new-rows-{name}.jsonl").read_bytes() == (out / f"ref-rows-{name}.jsonl").read_bytes()
        xcoms = [as_xcom(with_row_cost(RunFolder(f).iter_results(RunFolder(f).load()), price))  # type: ignore[arg-type]
                 for f in (reference, priced)]
        assert xcoms[0] == xcoms[1]
    return copied


def _twin(folder: Path) -> Path:
    twin = folder.with_name(folder.name + "-reference")
    shutil.copytree(folder, twin)
    return twin


async def test_priced_results_land_as_the_unpriced_ones(emulator: Any, tmp_path: Path) -> None:
    cache = AnswerCache(tmp_path / "cache")
    earlier = _run(tmp_path / "earlier", emulator, cache)  # fills the cache: its rows are cached below
    manifest = earlier.prepare_or_load(lambda: _rows([f"known {i}" for i in range(12)]), SPEC, carry=CARRY)
    await _until_ended(earlier, manifest)
    await earlier.collect(manifest, PARSER)
    await earlier.backend.aclose()

    texts = [f"known {i}" for i in range(6)] + [f"new {i % 25}" for i in range(40)]  # cached, repeats
    run = _run(tmp_path / "ws", emulator, cache)
    manifest = run.prepare_or_load(lambda: _rows(texts), SPEC, max_rows_per_chunk=9, carry=CARRY)
    assert manifest.cached_rows == 6 and manifest.follower_rows == 15
    emulator.set_fault_plan(FaultPlan(row_error_rate=0.25, row_error_code="invalid_request_error", seed=3))
    try:
        await _until_ended(run, manifest)
    finally:
        emulator.clear_fault_plan()
    await run.backend.aclose()
    reference = _twin(tmp_path / "ws")

    unpriced = await _collect(reference, emulator, cache, None)
    priced = await _collect(tmp_path / "ws", emulator, cache, PRICE)
    assert all(c.priced is None for c in unpriced.chunks)
    assert {c.priced for c in priced.chunks} == {price_note(PRICE)} and len(priced.chunks) == 3
    assert sum(c.counts.get("failed", 0) for c in priced.chunks) > 0
    out = tmp_path / "out"
    out.mkdir()
    assert _same_landing(reference, tmp_path / "ws", out) == 3  # each chunk copied whole at the same price

    # a resumed run: its first chunk was collected before rows were priced at collect (no note)
    mixed = tmp_path / "mixed"
    shutil.copytree(tmp_path / "ws", mixed)
    first = priced.chunks[0]
    assert first.results is not None
    shutil.copyfile(reference / first.results, mixed / first.results)
    old = RunFolder(mixed)
    resumed = old.load()
    assert resumed is not None
    resumed.chunks[0].priced = None
    old.store.save(resumed)
    want, _ = _land(reference, out / "mixed-ref.jsonl", PRICE)
    got, sink = _land(mixed, out / "mixed-new.jsonl", PRICE)
    assert got == want and len(sink.copied) == 2


async def test_real_time_rows_land_as_before(emulator: Any, tmp_path: Path) -> None:
    run = _run(tmp_path / "ws", emulator, None)
    manifest = run.prepare_or_load(lambda: _rows([f"now {i}" for i in range(14)]), SPEC, max_rows_per_chunk=8,
                                   carry=CARRY)
    claim_for_realtime(manifest, run.store)
    reference = _twin(tmp_path / "ws")
    run.collector.price = PRICE
    await answer_in_realtime(run, manifest, PARSER, RunnerSettings(max_concurrency=4))
    await run.backend.aclose()
    shutil.copytree(tmp_path / "ws" / "realtime", reference / "realtime")  # the same answers, not sent again
    before = sum(emulator.stats()["openai"]["requests_by_custom_id"].values())
    again = _run(reference, emulator, None)
    loaded = again.store.load()
    assert loaded is not None
    await answer_in_realtime(again, loaded, PARSER, RunnerSettings(max_concurrency=4))
    await again.backend.aclose()
    assert sum(emulator.stats()["openai"]["requests_by_custom_id"].values()) == before
    assert {c.path for c in manifest.chunks} == {"realtime"} and manifest.is_done
    out = tmp_path / "out"
    out.mkdir()
    assert _same_landing(reference, tmp_path / "ws", out) == 2
    landed = (out / "new-same-.out").read_text()
    assert '"answered_by":"realtime"' in landed and '"cost_usd":' in landed


@pytest.mark.parametrize(("carry", "priced"), [(CARRY, True), (("cost_usd",), False), (None, False)])
def test_a_carried_column_named_cost_usd_keeps_the_rows_unpriced_at_collect(
        carry: tuple[str, ...] | None, priced: bool) -> None:
    assert (collect_price(PRICE, carry) is PRICE) is priced
    assert collect_price(None, CARRY) is None


@pytest.mark.usefixtures("airflow_db")
def test_the_operator_prices_at_collect_and_lands_the_files_copied(tmp_path: Path, emulator: Any) -> None:
    from tests.airflow_helpers import run_dag, task_states

    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(fast_json.dumps_line({"id": f"op{i:03d}", "text": f"say {i % 30}"}).decode()
                            for i in range(40)))
    out = tmp_path / "out.jsonl"
    dag_run = run_dag("llmb_cache", {"rows": f"file://{rows}", "destination": f"file://{out}",
                                     "workspace": f"file://{tmp_path}/ws"})
    assert task_states(dag_run) == {"batch": "success"}
    [path] = list((tmp_path / "ws").glob("llmb_cache/batch/*/manifest.json"))
    folder = RunFolder(path.parent)
    manifest = folder.load()
    assert manifest is not None and manifest.follower_rows == 10
    assert [c.priced for c in manifest.chunks] == [price_note(PRICE)]
    results = manifest.chunks[0].results
    assert results is not None
    landed = out.read_bytes()
    assert landed.startswith((path.parent / results).read_bytes())  # the collected file, as it is
    lines = [fast_json.loads(line) for line in landed.splitlines()]
    assert len(lines) == 40 and all(line["cost_usd"] is not None for line in lines)
