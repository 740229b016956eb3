"""LLMBatchTrigger.on_kill (a user marked the deferred task failed/success or cleared it), driven the way
the triggerer drives it: run() is started, its task is cancelled, then on_kill() is awaited. Against the
bundled emulator, with a slow fault plan so the batches are still running when the task is killed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from airflow_llm_batch.emulator import FaultPlan
from airflow_llm_batch.pipeline.run import CANCELLED_FILE
from airflow_llm_batch.triggers.batch import LLMBatchTrigger
from tests.triggers.test_batch_trigger import make_batch

STOPPED = frozenset({"cancelling", "cancelled"})


@pytest.fixture
def client(emulator: Any) -> Iterator[OpenAI]:
    emulator.set_fault_plan(FaultPlan(slow_factor=2000))  # ~10 requests/s: 200 rows run ~20 s
    try:
        with OpenAI(base_url=emulator.openai_base_url, api_key="test-key") as c:
            yield c
    finally:
        emulator.clear_fault_plan()


async def killed(trigger: LLMBatchTrigger) -> None:
    """Start run(), let it poll a few times, cancel it as the triggerer does on a user action, then
    await on_kill() (Airflow calls it after the run task was cancelled)."""
    task = asyncio.ensure_future(trigger.run().asend(None))
    await asyncio.sleep(trigger.poll_interval * 5)
    assert not task.done(), f"the trigger ended before it was killed: {task.result()}"
    task.cancel("user action")
    with pytest.raises(asyncio.CancelledError):
        await task
    await trigger.on_kill()


def status(client: OpenAI, batch_id: str) -> str:
    return client.batches.retrieve(batch_id).status


async def test_on_kill_cancels_every_open_batch_and_records_them(client: OpenAI, tmp_path: Path) -> None:
    ids = [make_batch(client, rows=200) for _ in range(2)]
    folder = tmp_path / "ws" / "dag" / "task" / "run"
    trigger = LLMBatchTrigger(provider="openai", conn_id="llm_emulator", batch_ids=ids, poll_interval=0.1,
                              run_folder=f"file://{folder}", cancel_on_kill=True)
    await asyncio.sleep(0.5)  # the batches are in progress, far from done
    assert {status(client, b) for b in ids} == {"in_progress"}
    await killed(trigger)
    assert {status(client, b) for b in ids} <= STOPPED
    assert sorted(json.loads((folder / CANCELLED_FILE).read_text())) == sorted(ids)


async def test_on_kill_leaves_batches_running_without_cancel_on_kill(client: OpenAI, tmp_path: Path) -> None:
    batch_id = make_batch(client, rows=200)
    trigger = LLMBatchTrigger(provider="openai", conn_id="llm_emulator", batch_ids=[batch_id], poll_interval=0.1,
                              run_folder=f"file://{tmp_path}", cancel_on_kill=False)
    await killed(trigger)
    assert status(client, batch_id) not in STOPPED
    assert not (tmp_path / CANCELLED_FILE).exists()
    client.batches.cancel(batch_id)  # do not leave it running for the other tests


async def test_on_kill_cancels_even_when_the_record_cannot_be_written(client: OpenAI, tmp_path: Path) -> None:
    batch_id = make_batch(client, rows=200)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    trigger = LLMBatchTrigger(provider="openai", conn_id="llm_emulator", batch_ids=[batch_id], poll_interval=0.1,
                              run_folder=f"file://{blocker}/run", cancel_on_kill=True)
    await killed(trigger)
    assert status(client, batch_id) in STOPPED


def test_kwargs_carry_the_run_folder_and_the_switch_and_old_kwargs_still_load() -> None:
    trigger = LLMBatchTrigger(provider="openai", conn_id="c", batch_ids=["b"], run_folder="file:///ws/d/t/r",
                              cancel_on_kill=True)
    _, kwargs = trigger.serialize()
    assert kwargs["run_folder"] == "file:///ws/d/t/r" and kwargs["cancel_on_kill"] is True
    old = {k: v for k, v in kwargs.items() if k not in ("run_folder", "cancel_on_kill")}
    assert LLMBatchTrigger(**old).cancel_on_kill is False  # a trigger deferred before the upgrade
