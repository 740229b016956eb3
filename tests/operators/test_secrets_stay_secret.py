"""Promise 6: a connection's key never lands in the metadata DB, the logs, the workspace or the results.

The DAGs (tests/dags/trust_test_dags.py) run in real Airflow with provider_options set, so the
options travel in trigger kwargs (normal form) and in the XCom handle (split form).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.airflow_helpers import run_dag, task_states, xcom

pytestmark = pytest.mark.usefixtures("emulator", "airflow_db")


def _files(*roots: Path) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from (p for p in root.rglob("*") if p.is_file())


def _holding(needle: str, *roots: Path) -> list[str]:
    """The files under ``roots`` whose bytes contain ``needle``, read by a CHILD process: SQLite's locks
    are POSIX locks, and closing any descriptor of the database file in this process would drop the
    locks its connections hold, so a later writer in another process could corrupt the metadata DB."""
    script = ("import sys; needle = sys.argv[1].encode()\n"
              "for path in sys.argv[2:]:\n"
              "    with open(path, 'rb') as fh:\n"
              "        if needle in fh.read(): print(path)\n")
    paths = [str(p) for p in _files(*roots)]
    found = subprocess.run([sys.executable, "-c", script, needle, *paths], capture_output=True, text=True,
                           check=True)
    return found.stdout.splitlines()


@pytest.mark.parametrize(("dag_id", "tasks"), [("trust_secret_batch", {"batch"}),
                                               ("trust_secret_split", {"submit", "wait", "land"})])
def test_the_connection_key_is_stored_nowhere(dag_id: str, tasks: set[str], tmp_path: Path, emulator: Any,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capfd: pytest.CaptureFixture[str]) -> None:
    key = f"sk-leakcheck-{uuid.uuid4().hex}"
    monkeypatch.setenv("AIRFLOW_CONN_LLM_SECRET_CONN", json.dumps(
        {"conn_type": "openai", "password": key, "host": emulator.openai_base_url}))
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"id": f"r{i}", "text": f"text {i}"}) + "\n" for i in range(30)))
    workspace, results = tmp_path / "ws", tmp_path / "out" / "results.jsonl"
    dag_run = run_dag(dag_id, {"rows": f"file://{rows}", "destination": f"file://{results}",
                               "workspace": f"file://{workspace}"})
    assert set(task_states(dag_run).values()) == {"success"} and set(task_states(dag_run)) == tasks
    home = Path(os.environ["AIRFLOW_HOME"])
    database = [p for p in home.glob("airflow.db*")]
    batch_ids = xcom(dag_run, "batch" if "batch" in tasks else "submit")["batch_ids"]
    # the searches can find what is there: the run id is in the DB, the batch ids in the workspace
    assert _holding(dag_run.run_id, *database) and _holding(batch_ids[0], workspace)
    assert len(results.read_text().splitlines()) == 30
    captured = capfd.readouterr()
    assert key not in captured.out + captured.err
    assert _holding(key, *database, home / "logs", workspace, results) == []
