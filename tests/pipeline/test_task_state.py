"""Run state in Airflow's task state store: a try on another worker, whose local workspace folder is
empty, re-attaches to the batches an earlier try created (real Airflow, the bundled emulator)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.airflow_helpers import run_dag, task_states
from tests.dags.statestore_test_dags import STOP_ENV
from tests.operators.test_llm_batch_operator import read_jsonl, write_rows

pytestmark = pytest.mark.usefixtures("emulator", "airflow_db")

ROOT = Path(__file__).resolve().parents[2]


def paid(emulator: Any) -> tuple[int, int, dict[str, int]]:
    """What the emulator was asked to create: batches, uploaded files, requests by custom_id."""
    openai = emulator.stats()["openai"]
    return openai["batches_created"], openai["files_uploaded"], dict(openai["requests_by_custom_id"])


def resume_elsewhere(run_id: str, *, retry: bool) -> subprocess.CompletedProcess[str]:
    """The task resumed in a fresh process (another worker): `airflow tasks test` on the same run.

    ``retry``: as the scheduler does for a retry (a new try from ``execute``); else the try resumes
    at ``execute_complete``, as after a deferral picked up by another worker."""
    if retry:
        _as_next_try(run_id)
    command = [sys.executable, "-m", "airflow", "tasks", "test", "llmb_statestore", "batch", run_id]
    env = {k: v for k, v in os.environ.items() if k != STOP_ENV}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _as_next_try(run_id: str) -> None:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(dag_id="llmb_statestore", run_id=run_id).one()
        ti.next_method = ti.next_kwargs = None
        ti.try_number += 1


def ti_state(run_id: str) -> str:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(dag_id="llmb_statestore", run_id=run_id).one()
        return str(ti.state)


def first_try(tmp_path: Path, emulator: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path, Path]:
    """Try 1 creates two batches, then its worker is lost; its local run folder is gone with it."""
    rows = write_rows(tmp_path / "rows.jsonl", 600)
    workspace, dest = tmp_path / "ws", tmp_path / "out.jsonl"
    before = paid(emulator)
    with monkeypatch.context() as patch:
        patch.setenv(STOP_ENV, "1")
        dag_run = run_dag("llmb_statestore", {"rows": f"file://{rows}", "destination": f"file://{dest}",
                                              "workspace": f"file://{workspace}"})
    assert task_states(dag_run) == {"batch": "failed"}
    after = paid(emulator)
    assert (after[0] - before[0], after[1] - before[1]) == (2, 2)  # 600 rows, 300 per chunk
    assert (workspace / "llmb_statestore").exists()
    shutil.rmtree(workspace)
    workspace.mkdir()  # the resuming worker's workspace: empty
    return dag_run.run_id, rows, dest


@pytest.mark.parametrize("retry", [True, False], ids=["retry", "after-deferral"])
def test_resume_in_a_fresh_process_with_an_empty_workspace_pays_nothing_twice(
        tmp_path: Path, emulator: Any, monkeypatch: pytest.MonkeyPatch, retry: bool) -> None:
    run_id, _, dest = first_try(tmp_path, emulator, monkeypatch)
    before = paid(emulator)
    assert before[0] > 0 and before[1] > 0 and before[2]["r00000"] >= 1
    done = resume_elsewhere(run_id, retry=retry)
    assert ti_state(run_id) == "success", done.stdout[-3000:] + done.stderr[-3000:]
    assert paid(emulator) == before  # no batch created, no file uploaded, no row sent again
    results = read_jsonl(dest)
    assert len(results) == 600 and len({r["key"] for r in results}) == 600
    assert all(r["status"] == "succeeded" for r in results)


def test_resume_with_changed_input_still_fails_with_input_changed(
        tmp_path: Path, emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id, rows, dest = first_try(tmp_path, emulator, monkeypatch)
    write_rows(rows, 601)  # one more row: the rendered requests differ
    before = paid(emulator)
    done = resume_elsewhere(run_id, retry=True)
    assert ti_state(run_id) == "failed"
    assert "InputChangedError" in done.stdout + done.stderr
    assert paid(emulator) == before
    assert not dest.exists()
