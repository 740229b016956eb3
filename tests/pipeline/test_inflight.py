"""The request cache knows what is in flight: records, their endpoint scope and retention, and a
later run adopting an earlier run's batch (counted on the emulator's side)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI

from airflow_llm_batch.backends.openai import OpenAIBatchBackend
from airflow_llm_batch.emulator import FaultPlan
from airflow_llm_batch.pipeline.cache import AnswerCache, CacheMode
from airflow_llm_batch.pipeline.fingerprint import endpoint_identity, request_fingerprint
from airflow_llm_batch.pipeline.render import RequestSpec
from airflow_llm_batch.pipeline.run import BatchRun
from tests.run_helpers import drive

FP, OTHER = "ab" * 32, "cd" * 32
SPEC = RequestSpec(model="gpt-4o-mini", prompt="{{ row.text }}", key="id")


def test_the_endpoint_is_part_of_the_fingerprint() -> None:
    line = {"custom_id": "r1", "body": {"model": "gpt-4o-mini", "messages": ["hi"]}}
    emulator = OpenAIBatchBackend(AsyncOpenAI(api_key="sk-secret", base_url="http://127.0.0.1:8787/v1"))
    real = OpenAIBatchBackend(AsyncOpenAI(api_key="sk-secret"))
    project = OpenAIBatchBackend(AsyncOpenAI(api_key="sk-secret", project="proj_2"))
    identities = {endpoint_identity(b) for b in (emulator, real, project)}
    assert len(identities) == 3 and not any("sk-secret" in i for i in identities)
    fps = {request_fingerprint("openai", line, i) for i in identities}
    assert len(fps) == 3 and request_fingerprint("openai", line) not in fps


def test_in_flight_records_are_found_within_retention_only(tmp_path: Path) -> None:
    now = [1_000_000.0]
    cache = AnswerCache(tmp_path, clock=lambda: now[0])
    assert cache.record_sent([(FP, "row-1")], "batch_1", sent_at=now[0]) == 1
    found = cache.find_in_flight([FP, OTHER], max_age=3600)
    assert set(found) == {FP} and (found[FP].batch_id, found[FP].custom_id) == ("batch_1", "row-1")
    now[0] += 3601
    assert cache.find_in_flight([FP], max_age=3600) == {}
    assert cache.get_many([FP]) == {}  # a record is not an answer


def test_in_flight_records_follow_the_cache_mode_and_skip_bad_entries(tmp_path: Path) -> None:
    assert AnswerCache(tmp_path, mode=CacheMode.READ).record_sent([(FP, "r")], "b", sent_at=1.0) == 0
    AnswerCache(tmp_path).record_sent([(FP, "r")], "b", sent_at=1.0)
    assert AnswerCache(tmp_path, mode=CacheMode.WRITE).find_in_flight([FP], max_age=1e12) == {}
    (page,) = (AnswerCache(tmp_path).in_flight.root / "pages").iterdir()
    page.write_text(page.read_text().replace(f'"fingerprint":"{FP}"', f'"fingerprint":"{OTHER}-bad"'))
    path = AnswerCache(tmp_path).in_flight.root / FP[:2] / f"{FP}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"v": 1, "fingerprint": OTHER, "batch_id": "b", "custom_id": "r", "sent_at": 1.0}))
    assert AnswerCache(tmp_path).find_in_flight([FP], max_age=1e12) == {}



async def test_a_cancelled_batch_of_a_dead_run_gives_its_answers_and_the_rest_is_sent_once(
        emulator: Any, tmp_path: Path) -> None:
    rows = [{"id": f"z{i:03d}", "text": f"adopt after cancel {i}"} for i in range(120)]
    backend = OpenAIBatchBackend(AsyncOpenAI(base_url=emulator.openai_base_url, api_key="k"))
    emulator.set_fault_plan(FaultPlan(slow_factor=2000))  # ~10 req/s
    try:
        dead = BatchRun(tmp_path / "run1", backend, tags={"run_id": "run1"}, cache=AnswerCache(tmp_path / "cache"))
        (batch_id,) = await dead.submit(dead.prepare_or_load(lambda: rows, SPEC))
        for _ in range(6_000):  # until some rows are answered (a hang guard, not a timing assertion)
            if (await backend.progress(batch_id)).completed >= 10:
                break
            await asyncio.sleep(0.05)
        await backend.cancel(batch_id)  # e.g. a user cancelled it after the run died
    finally:
        emulator.clear_fault_plan()
    run = BatchRun(tmp_path / "run2", backend, tags={"run_id": "run2"}, cache=AnswerCache(tmp_path / "cache"))
    manifest = run.prepare_or_load(lambda: rows, SPEC)
    assert [c.adopted for c in manifest.chunks] == [batch_id]
    assert await run.submit(manifest) == []  # nothing created: it waits on run 1's batch
    manifest = await drive(run, manifest)
    await backend.aclose()
    results = list(run.iter_results(manifest))
    assert sorted(r.key for r in results) == [r["id"] for r in rows]
    assert {r.status.value for r in results} == {"succeeded"}
    adopted = [r for r in results if r.batch_id == batch_id]
    resent = [r for r in results if r.batch_id != batch_id]
    assert adopted and resent and all(r.attempts == 2 for r in resent)
    paid = emulator.stats()["openai"]["succeeded_by_custom_id"]
    assert all(paid[r["id"]] == 1 for r in rows)
    assert run.summary(manifest).adopted_rows == len(rows)


async def test_a_record_of_a_batch_that_is_gone_sends_the_rows(emulator: Any, tmp_path: Path) -> None:
    rows = [{"id": f"g{i:03d}", "text": f"gone batch {i}"} for i in range(30)]
    backend = OpenAIBatchBackend(AsyncOpenAI(base_url=emulator.openai_base_url, api_key="k"))
    cache = AnswerCache(tmp_path / "cache")
    probe = BatchRun(tmp_path / "probe", backend, tags={"run_id": "probe"}, cache=cache)
    manifest = probe.prepare_or_load(lambda: rows, SPEC)
    (chunk,) = manifest.chunks
    cache.record_sent([(json.loads(line)["f"], json.loads(line)["c"])
                       for line in (tmp_path / "probe" / chunk.keys).read_text().splitlines()],
                      "batch_deleted_long_ago", sent_at=time.time())
    run = BatchRun(tmp_path / "run", backend, tags={"run_id": "run"}, cache=cache)
    manifest = run.prepare_or_load(lambda: rows, SPEC)
    assert [c.adopted for c in manifest.chunks] == ["batch_deleted_long_ago"]
    before = emulator.stats()["openai"]["batches_created"]
    assert len(await run.submit(manifest)) == 1  # the batch is unknown (404): the rows are sent
    manifest = await drive(run, manifest)
    await backend.aclose()
    assert emulator.stats()["openai"]["batches_created"] == before + 1
    assert {r.status.value for r in run.iter_results(manifest)} == {"succeeded"}
    assert run.summary(manifest).adopted_rows == 0 and run.summary(manifest).sent_rows == len(rows)
