"""``@task.llm_batch_job`` in real Airflow: rows computed in Python, results in the XCom summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.airflow_helpers import run_dag, task_states, xcom

pytestmark = pytest.mark.usefixtures("emulator", "airflow_db")


def test_decorated_function_rows_run_as_a_batch(tmp_path: Path) -> None:
    dag_run = run_dag("llmb_decorator", {"workspace": f"file://{tmp_path}/ws"})
    assert task_states(dag_run) == {"computed_rows": "success"}
    summary = xcom(dag_run, "computed_rows")
    assert summary["succeeded"] == 25
    outputs = {r["key"]: r["output"] for r in summary["results"]}
    assert outputs["d7"] == "Row d7 says {{ computed 7 }}"
