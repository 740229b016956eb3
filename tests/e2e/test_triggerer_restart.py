"""End-to-end crash safety in a real `airflow standalone` (issue 6): the triggerer dies while the task is
deferred and its batches are running; a new triggerer takes the orphaned trigger over; the run ends
with every row answered once and nothing paid twice (DESIGN.md promise 2).
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

from tests.e2e.standalone import (
    TERMINAL_BATCH,
    TERMINAL_TI,
    AirflowStandalone,
    emulator_batch,
    kill_tree,
    log,
    wait_for,
)

# the `slow_emulator` and `airflow` fixtures (tests/e2e/conftest.py) read these
DAGS = Path(__file__).parent / "dags"
DAG_FILE = DAGS / "llmb_e2e_restart.py"
DAG_ID = "llmb_e2e_triggerer_restart"
CONN_ID = "llm_e2e_emulator"
TASK_ID = "batch"
ROWS = 400
CHUNK = 200
#: emulator pace: each 200-row batch runs ~20 s, long enough to kill and replace the triggerer mid-way
REQUESTS_PER_SECOND = 10.0
AIRFLOW_ENV = {
    # a restarted triggerer takes over triggers of a triggerer whose heartbeat is older than this
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "5",
}

def test_triggerer_killed_while_deferred_new_triggerer_finishes_nothing_paid_twice(
    tmp_path: Path, slow_emulator: Any, airflow: AirflowStandalone
) -> None:
    t0 = time.monotonic()
    run_id = "e2e-triggerer-restart"
    dest = airflow.run_when_ready(DAG_ID, run_id, tmp_path, ROWS, t0)

    def ti() -> dict[str, Any]:
        return airflow.task_instance(DAG_ID, run_id, TASK_ID)

    def deferred_and_running() -> dict[str, Any] | None:
        airflow.check_alive()
        current = ti()
        if current["state"] in TERMINAL_TI:
            raise AssertionError(f"task ended before it deferred: {current['state']}")
        trigger = current.get("trigger") or {}
        if current["state"] == "deferred" and trigger.get("triggerer_id") is not None:
            return current
        return None

    deferred = wait_for("the task to be deferred and its trigger assigned to the triggerer",
                        deferred_and_running, timeout=120, on_timeout=lambda: str(ti()))
    old_triggerer_id = deferred["trigger"]["triggerer_id"]
    trigger_id = deferred["trigger"]["id"]
    log(f"deferred; trigger {trigger_id} on triggerer job {old_triggerer_id}", t0)

    # the old triggerer runs the trigger: wait for its first progress line, then kill it mid-batch
    def old_triggerer_polled() -> bool:
        logs = (airflow.home / "logs" / f"dag_id={DAG_ID}").rglob(f"*.trigger.{old_triggerer_id}.log")
        return any("batches ended" in path.read_text(errors="replace") for path in logs)

    wait_for(f"a progress line of the trigger in triggerer job {old_triggerer_id}'s log",
             old_triggerer_polled, timeout=60, interval=0.2)
    log("the old triggerer polled the batches", t0)
    stats = slow_emulator.stats()["openai"]
    assert stats["batches_created"] == ROWS // CHUNK == 2, stats["batches_created"]
    before_kill = {b: emulator_batch(slow_emulator, b) for b in stats["batches"]}
    assert all(b["status"] not in TERMINAL_BATCH for b in before_kill.values()), before_kill
    triggerer = airflow.component("triggerer")
    assert triggerer is not None, "no `airflow triggerer` child of standalone"
    airflow.remember_processes()
    killed = kill_tree(triggerer.pid, signal.SIGKILL)
    t_kill = time.monotonic()
    log(f"SIGKILLed triggerer tree {[p.pid for p in killed]}; batches then: "
        f"{[(b['status'], b['request_counts']) for b in before_kill.values()]}", t0)
    still_open = [emulator_batch(slow_emulator, b)["status"] for b in stats["batches"]]
    assert all(s not in TERMINAL_BATCH for s in still_open), still_open
    assert ti()["state"] == "deferred"

    new_triggerer = airflow.start_component("triggerer")
    log(f"started a new triggerer, pid {new_triggerer.pid}", t0)

    def taken_over() -> dict[str, Any] | None:
        airflow.check_alive()
        if new_triggerer.poll() is not None:
            raise RuntimeError(f"the new triggerer exited with code {new_triggerer.returncode}")
        current = ti()
        trigger = current.get("trigger") or {}
        if trigger.get("triggerer_id") not in (None, old_triggerer_id) or current["state"] != "deferred":
            return current
        return None

    taken = wait_for("a new triggerer to take the orphaned trigger over", taken_over, timeout=120,
                     on_timeout=lambda: str(ti()))
    t_takeover = time.monotonic()
    at_takeover = [emulator_batch(slow_emulator, b) for b in stats["batches"]]
    log(f"taken over {t_takeover - t_kill:.1f}s after the kill: ti {taken['state']}, trigger "
        f"{taken.get('trigger')}; batches {[(b['status'], b['request_counts']) for b in at_takeover]}", t0)

    def run_ended() -> dict[str, Any] | None:
        airflow.check_alive()
        run = airflow.dag_run(DAG_ID, run_id)
        return run if run["state"] in ("success", "failed") else None

    run = wait_for("the DAG run to end", run_ended, timeout=180,
                   on_timeout=lambda: f"{airflow.dag_run(DAG_ID, run_id)} {ti()}")
    log(f"run ended: {run['state']} ({time.monotonic() - t_kill:.1f}s after the kill)", t0)
    final_ti = ti()
    assert run["state"] == "success", (run, final_ti)
    assert final_ti["state"] == "success" and final_ti["try_number"] == 1, final_ti

    # nothing paid twice: 2 batches in all, every row submitted exactly once
    stats = slow_emulator.stats()["openai"]
    assert stats["batches_created"] == ROWS // CHUNK, stats
    assert stats["batches_failed_validation"] == 0
    submitted = stats["requests_by_custom_id"]
    assert len(submitted) == ROWS and set(submitted.values()) == {1}, (
        {k: v for k, v in submitted.items() if v != 1}, len(submitted))

    # nothing lost: one succeeded result per row
    results = [json.loads(line) for line in dest.read_text().splitlines()]
    assert len(results) == ROWS
    keys = [r["key"] for r in results]
    assert len(set(keys)) == ROWS and set(keys) == {f"r{i:04d}" for i in range(ROWS)}
    not_succeeded = [r for r in results if r["status"] != "succeeded"]
    assert not not_succeeded, not_succeeded[:3]
    assert {r["custom_id"] for r in results} == set(submitted)
    assert {r["batch_id"] for r in results} == set(stats["batches"])
    log("all assertions hold", t0)
