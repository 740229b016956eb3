"""The operator's own `timeout` (issue 6, "timeout cancels the batches and says so"), in real Airflow
(dag.test(), the trigger run inline) against the session emulator slowed down so the batches cannot end
in time: the task fails with BatchTimeoutError; with ``cancel_on_timeout`` its batches are cancelled at
the provider, without it they are left running. DAGs: tests/dags/timeout_test_dags.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from airflow_llm_batch.emulator import FaultPlan
from tests.airflow_helpers import run_dag, task_states, xcom

pytestmark = pytest.mark.usefixtures("emulator", "airflow_db")

ROWS = 100  # two 50-row chunks: two batches
#: the session emulator answers 20,000 requests/s per batch; slowed 10,000 times that is 2 per second,
#: so a 50-row batch needs ~25 s and is still running when the 2-s timeout passes
SLOW = FaultPlan(slow_factor=10000)
RUNNING = {"validating", "in_progress"}


@pytest.fixture
def slow(emulator: Any) -> Iterator[Any]:
    emulator.set_fault_plan(SLOW)
    try:
        yield emulator
    finally:
        emulator.clear_fault_plan()


@pytest.fixture
def client(emulator: Any) -> Iterator[OpenAI]:
    with OpenAI(base_url=emulator.openai_base_url, api_key="test-key", max_retries=0) as openai_client:
        yield openai_client


def run_timing_out(dag_id: str, tmp_path: Path, emulator: Any, capfd: pytest.CaptureFixture[str]
                   ) -> tuple[Any, list[str], str, float]:
    """Run the DAG; return the run, the batches it created, everything it printed, its wall time."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"id": f"r{i:03d}", "text": f"item {i}"}) + "\n" for i in range(ROWS)))
    before = set(emulator.stats()["openai"]["batches"])
    started = time.monotonic()
    dag_run = run_dag(dag_id, {"rows": f"file://{rows}", "destination": f"file://{tmp_path}/out.jsonl",
                               "workspace": f"file://{tmp_path}/ws"})
    elapsed = time.monotonic() - started
    output = capfd.readouterr()
    printed = output.out + output.err
    created = [b for b in emulator.stats()["openai"]["batches"] if b not in before]
    print(f"[timeout] {dag_id}: dag.test() took {elapsed:.1f}s; batches {created}")
    return dag_run, created, printed, elapsed


def assert_failed_on_timeout(dag_run: Any, created: list[str], printed: str, elapsed: float, done: str) -> None:
    assert task_states(dag_run) == {"batch": "failed"}, printed[-4000:]
    assert elapsed >= 2, f"the task gave up after {elapsed:.1f}s, before its 2-s timeout"
    assert len(created) == ROWS // 50 == 2, created
    # the task recorded its batches before it waited on them
    assert sorted(xcom(dag_run, "batch", "batch_ids")) == sorted(created)
    # the task log says why it failed
    assert (f"BatchTimeoutError: the task's timeout passed before the batches ended: 2 open batch(es) {done}"
            in printed), printed[-4000:]


def test_timeout_fails_the_task_and_cancels_its_batches(
    tmp_path: Path, slow: Any, client: OpenAI, capfd: pytest.CaptureFixture[str]
) -> None:
    dag_run, created, printed, elapsed = run_timing_out("llmb_timeout_cancel", tmp_path, slow, capfd)
    assert_failed_on_timeout(dag_run, created, printed, elapsed, "cancelled")
    # ...and says it cancelled them
    assert f"Cancelled 2 open batch(es): {created}" in printed, printed[-4000:]

    batches = [client.batches.retrieve(b) for b in created]
    print(f"[timeout] right after the task: {[(b.id, b.status, b.request_counts) for b in batches]}")
    assert all(b.status in ("cancelling", "cancelled") for b in batches), batches
    # cancelled because the timeout passed (2 s after this try started waiting), not before
    (manifest_path,) = (tmp_path / "ws").rglob("manifest.json")
    deadline = json.loads(manifest_path.read_text())["deadline"]["at"]
    for batch in batches:
        assert batch.cancelling_at is not None
        assert int(deadline) <= batch.cancelling_at <= deadline + 30, (deadline, batch)
        assert batch.request_counts is not None and batch.request_counts.completed < batch.request_counts.total

    def all_cancelled() -> list[Any]:
        return [client.batches.retrieve(b) for b in created]

    give_up = time.monotonic() + 10
    final = all_cancelled()
    while any(b.status != "cancelled" for b in final) and time.monotonic() < give_up:
        time.sleep(0.1)
        final = all_cancelled()
    assert [b.status for b in final] == ["cancelled", "cancelled"], final
    assert all(b.cancelled_at is not None for b in final)


def test_timeout_without_cancel_fails_the_task_and_leaves_its_batches_running(
    tmp_path: Path, slow: Any, client: OpenAI, capfd: pytest.CaptureFixture[str]
) -> None:
    dag_run, created, printed, elapsed = run_timing_out("llmb_timeout_leave", tmp_path, slow, capfd)
    try:
        assert_failed_on_timeout(dag_run, created, printed, elapsed, "left running (cancel_on_timeout=False)")
        assert f"Leaving 2 open batch(es) running: {created}" in printed, printed[-4000:]
        assert "Cancelled" not in printed, printed[-4000:]

        batches = [client.batches.retrieve(b) for b in created]
        print(f"[timeout] right after the task: {[(b.id, b.status, b.request_counts) for b in batches]}")
        assert all(b.status in RUNNING for b in batches), batches
        assert all(b.cancelling_at is None and b.cancelled_at is None for b in batches), batches
        # still running a moment later: nobody cancels them behind the task's back
        time.sleep(0.5)
        assert all(client.batches.retrieve(b).status in RUNNING for b in created)
    finally:
        for batch_id in created:  # do not leave slow batches running in the session's emulator
            if client.batches.retrieve(batch_id).status in RUNNING:
                client.batches.cancel(batch_id)
