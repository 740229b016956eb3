"""End-to-end: a user marks a deferred task failed (issue 10, item 6) in a real `airflow standalone`.

The task's batches are running at the provider while its trigger polls them. Marking the task
instance failed over the REST API (the UI's "Mark as failed") makes the triggerer cancel the trigger
and call ``LLMBatchTrigger.on_kill``: with ``cancel_on_kill`` (the default) every open batch is
recorded in the run folder's ``cancelled_by_task.json`` and cancelled, so nothing keeps billing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from airflow_llm_batch.pipeline.run import CANCELLED_FILE
from tests.e2e.standalone import (
    TERMINAL_BATCH,
    TERMINAL_TI,
    AirflowStandalone,
    emulator_batch,
    log,
    wait_for,
)

# the `slow_emulator` and `airflow` fixtures (tests/e2e/conftest.py) read these
DAGS = Path(__file__).parent / "dags"
DAG_FILE = DAGS / "llmb_e2e_kill.py"
DAG_ID = "llmb_e2e_mark_failed"
CONN_ID = "llm_e2e_emulator"
TASK_ID = "batch"
ROWS = 400
CHUNK = 200
#: emulator pace: each 200-row batch would run ~40 s, far longer than the mark-failed takes to act
REQUESTS_PER_SECOND = 5.0
#: on a loaded machine the worker's calls to the execution API take over the default 5 s
AIRFLOW_ENV = {"AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60"}


def test_marking_a_deferred_task_failed_cancels_its_batches(
    tmp_path: Path, slow_emulator: Any, airflow: AirflowStandalone
) -> None:
    t0 = time.monotonic()
    run_id = "e2e-mark-failed"
    airflow.run_when_ready(DAG_ID, run_id, tmp_path, ROWS, t0)

    def ti() -> dict[str, Any]:
        return airflow.task_instance(DAG_ID, run_id, TASK_ID)

    def batches() -> dict[str, dict[str, Any]]:
        return {b: emulator_batch(slow_emulator, b) for b in slow_emulator.stats()["openai"]["batches"]}

    def deferred_and_polled() -> dict[str, Any] | None:
        airflow.check_alive()
        try:
            current = ti()
        except OSError:  # the api-server is slow to answer on a loaded machine: ask again
            return None
        if current["state"] in TERMINAL_TI:
            raise AssertionError(f"the task ended before it deferred: {current['state']}")
        trigger = current.get("trigger") or {}
        if current["state"] != "deferred" or trigger.get("triggerer_id") is None:
            return None
        logs = airflow.task_logs(DAG_ID, run_id, TASK_ID, 1)
        polled = any("batches ended" in p.read_text(errors="replace") for p in logs if ".trigger." in p.name)
        return current if polled else None

    deferred = wait_for("the task to be deferred and its trigger to poll", deferred_and_polled, timeout=180,
                        on_timeout=lambda: str(ti()))
    log(f"deferred; trigger {deferred['trigger']['id']} polled the batches", t0)
    before = batches()
    assert len(before) == ROWS // CHUNK, before
    assert all(b["status"] not in TERMINAL_BATCH for b in before.values()), before

    status, answer = airflow.request(
        "PATCH", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK_ID}", {"new_state": "failed"})
    t_mark = time.monotonic()
    assert status == 200, (status, answer)
    log(f"marked failed: {[(t['task_id'], t['state']) for t in answer['task_instances']]}", t0)

    def all_cancelled() -> dict[str, dict[str, Any]] | None:
        airflow.check_alive()
        now = batches()
        return now if all(b["status"] == "cancelled" for b in now.values()) else None

    after = wait_for("every batch to be cancelled at the provider", all_cancelled, timeout=60, interval=0.2,
                     on_timeout=lambda: str({k: v["status"] for k, v in batches().items()}))
    log(f"every batch cancelled {time.monotonic() - t_mark:.1f}s after the mark: "
        f"{[(b['status'], b['request_counts']) for b in after.values()]}", t0)
    # cancelled mid-way: some rows were never answered (the batches did not just run out)
    assert all(b["request_counts"]["completed"] < CHUNK for b in after.values()), after

    # the task recorded them as cancelled by itself: a clear resends only their unanswered rows
    record = tmp_path / "ws" / DAG_ID / TASK_ID / run_id / CANCELLED_FILE
    assert sorted(json.loads(record.read_text())) == sorted(before)
    assert ti()["state"] == "failed"
    trigger_logs = "\n".join(p.read_text(errors="replace") for p in airflow.task_logs(DAG_ID, run_id, TASK_ID)
                             if ".trigger." in p.name)
    assert "Task killed: cancelled 2 open batch(es)" in trigger_logs, trigger_logs[-3000:]
    log("all assertions hold", t0)
