"""End-to-end crash safety in a real `airflow standalone` (issue 6, "a task cleared mid-wait"): the task
is deferred and its batches are running when someone clears it (the UI's "Clear", here over the REST
API); Airflow runs it again from scratch as a new try; the new try finds the manifest in its workspace,
re-attaches to the batches the first try created, and lands every row once: nothing is paid twice
(DESIGN.md promise 2).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

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
DAG_FILE = DAGS / "llmb_e2e_cleared.py"
DAG_ID = "llmb_e2e_task_cleared"
CONN_ID = "llm_e2e_emulator"
TASK_ID = "batch"
ROWS = 400
CHUNK = 200
#: emulator pace: each 200-row batch runs ~25 s, long enough for a cleared task to come back as a new
#: try (scheduled, queued, started on a worker, deferred again: ~6 s here) while its batches still run
REQUESTS_PER_SECOND = 8.0


def read_logs(paths: list[Path]) -> str:
    return "\n".join(path.read_text(errors="replace") for path in paths)


def _deferred_probe(airflow: AirflowStandalone, run_id: str, try_number: int) -> Any:
    """A wait_for probe: the task instance of try ``try_number`` deferred, its trigger on a triggerer."""

    def probe() -> dict[str, Any] | None:
        airflow.check_alive()
        current = airflow.task_instance(DAG_ID, run_id, TASK_ID)
        if current["try_number"] == try_number and current["state"] in TERMINAL_TI:
            raise AssertionError(f"try {try_number} ended before it deferred: {current['state']}")
        trigger = current.get("trigger") or {}
        if (current["try_number"] == try_number and current["state"] == "deferred"
                and trigger.get("triggerer_id") is not None):
            return current
        return None

    return probe


def test_task_cleared_while_deferred_new_try_reattaches_nothing_paid_twice(
    tmp_path: Path, slow_emulator: Any, airflow: AirflowStandalone
) -> None:
    t0 = time.monotonic()
    run_id = "e2e-task-cleared"
    dest = airflow.run_when_ready(DAG_ID, run_id, tmp_path, ROWS, t0)

    def ti() -> dict[str, Any]:
        return airflow.task_instance(DAG_ID, run_id, TASK_ID)

    def batches() -> list[dict[str, Any]]:
        return [emulator_batch(slow_emulator, b) for b in slow_emulator.stats()["openai"]["batches"]]

    def brief(found: list[dict[str, Any]]) -> list[tuple[str, dict[str, int]]]:
        return [(b["status"], b["request_counts"]) for b in found]

    # -- try 1: submits both batches, defers, and its trigger polls them ---------------------------
    def deferred(try_number: int) -> Any:
        return _deferred_probe(airflow, run_id, try_number)

    first = wait_for("try 1 to be deferred and its trigger assigned to the triggerer", deferred(1),
                     timeout=120, on_timeout=lambda: str(ti()))
    log(f"try 1 deferred; trigger {first['trigger']['id']} on triggerer job {first['trigger']['triggerer_id']}", t0)

    def try_polled(attempt: int) -> Any:
        def probe() -> bool:
            airflow.check_alive()
            trigger_logs = [p for p in airflow.task_logs(DAG_ID, run_id, TASK_ID, attempt) if ".trigger." in p.name]
            return "batches ended" in read_logs(trigger_logs)

        return probe

    wait_for("a progress line of try 1's trigger", try_polled(1), timeout=60, interval=0.2)
    stats = slow_emulator.stats()["openai"]
    assert stats["batches_created"] == ROWS // CHUNK == 2, stats["batches_created"]
    original_batches = list(stats["batches"])
    before_clear = batches()
    assert all(b["status"] not in TERMINAL_BATCH for b in before_clear), brief(before_clear)
    log(f"try 1's trigger polled the batches: {brief(before_clear)}", t0)

    # -- clear the deferred task: Airflow runs it again, from execute(), as try 2 ---------------------
    cleared = airflow.clear_task_instances(DAG_ID, run_id, [TASK_ID])
    t_clear = time.monotonic()
    assert cleared["total_entries"] == 1, cleared
    at_clear = batches()
    log(f"cleared {[(c['task_id'], c['try_number'], c['state']) for c in cleared['task_instances']]}; "
        f"batches then: {brief(at_clear)}", t0)
    assert all(b["status"] not in TERMINAL_BATCH for b in at_clear), brief(at_clear)

    second = wait_for("try 2 to be deferred on the batches of try 1", deferred(2), timeout=120,
                      on_timeout=lambda: str(ti()))
    at_second = batches()
    log(f"try 2 deferred {time.monotonic() - t_clear:.1f}s after the clear; trigger {second['trigger']}; "
        f"batches then: {brief(at_second)}", t0)
    # the new try came back while the batches were still running (else this test proves nothing)
    assert any(b["status"] not in TERMINAL_BATCH for b in at_second), brief(at_second)
    wait_for("a progress line of try 2's trigger", try_polled(2), timeout=60, interval=0.2)

    # -- the run ends: try 2 lands everything --------------------------------------------------------
    def run_ended() -> dict[str, Any] | None:
        airflow.check_alive()
        run = airflow.dag_run(DAG_ID, run_id)
        return run if run["state"] in ("success", "failed") else None

    run = wait_for("the DAG run to end", run_ended, timeout=180,
                   on_timeout=lambda: f"{airflow.dag_run(DAG_ID, run_id)} {ti()}")
    log(f"run ended: {run['state']} ({time.monotonic() - t_clear:.1f}s after the clear)", t0)
    final_ti = ti()
    assert run["state"] == "success", (run, final_ti)
    assert final_ti["state"] == "success", final_ti
    assert final_ti["try_number"] > 1, final_ti
    assert final_ti["try_number"] == 2, final_ti
    tries = airflow.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK_ID}/tries")
    log(f"tries: {[(t['try_number'], t['state']) for t in tries['task_instances']]}", t0)

    # try 1 paid for both batches; try 2 re-attached to them from the manifest and submitted nothing
    worker_logs = {n: read_logs([p for p in airflow.task_logs(DAG_ID, run_id, TASK_ID, n) if ".trigger." not in p.name])
                   for n in (1, 2)}
    assert worker_logs[1].count("Submitted chunk") == 2, worker_logs[1][-3000:]
    assert "Submitted chunk" not in worker_logs[2], worker_logs[2][-3000:]
    assert "Re-attaching to 2 chunk(s)" in worker_logs[2], worker_logs[2][-3000:]
    assert "2 batch(es) already created" in worker_logs[2], worker_logs[2][-3000:]

    # nothing paid twice: 2 batches in all, every row submitted exactly once
    stats = slow_emulator.stats()["openai"]
    assert stats["batches_created"] == ROWS // CHUNK, stats["batches_created"]
    assert list(stats["batches"]) == original_batches, stats["batches"]
    assert stats["batches_failed_validation"] == 0
    submitted = stats["requests_by_custom_id"]
    assert len(submitted) == ROWS and set(submitted.values()) == {1}, (
        {k: v for k, v in submitted.items() if v != 1}, len(submitted))
    assert all(b["status"] == "completed" for b in batches()), brief(batches())

    # nothing lost: one succeeded result per row
    results = [json.loads(line) for line in dest.read_text().splitlines()]
    assert len(results) == ROWS
    keys = [r["key"] for r in results]
    assert len(set(keys)) == ROWS and set(keys) == {f"r{i:04d}" for i in range(ROWS)}
    not_succeeded = [r for r in results if r["status"] != "succeeded"]
    assert not not_succeeded, not_succeeded[:3]
    assert {r["custom_id"] for r in results} == set(submitted)
    assert {r["batch_id"] for r in results} == set(original_batches)
    log("all assertions hold", t0)
