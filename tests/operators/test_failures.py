"""Errors no retry can fix end the task on its first try (retries=2 in every DAG here), with the
reason and what to do; see operators/failures.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_llm_batch.emulator import FaultPlan
from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.operators import LLMBatchOperator
from tests.airflow_helpers import run_dag

pytestmark = pytest.mark.usefixtures("emulator", "airflow_db")


def _rows(tmp_path: Path, count: int = 20) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"id": f"r{i}", "text": f"text {i}"}) + "\n" for i in range(count)))
    return path


def _run_once(dag_id: str, tmp_path: Path, **conf: str) -> tuple[Any, str]:
    """Run the DAG; return its one task instance and the error its failure callback recorded."""
    params = {"rows": f"file://{_rows(tmp_path)}", "destination": f"file://{tmp_path}/out.jsonl",
              "workspace": f"file://{tmp_path}/ws", **conf}
    dag_run = run_dag(dag_id, params)
    (ti,) = dag_run.get_task_instances()
    error = tmp_path / "out.jsonl.error"
    return ti, error.read_text() if error.exists() else ""


CASES = {
    "trust_unknown_provider": "unknown provider 'openia'",
    "trust_keyless_connection": "has no API key: set its password",
    "trust_template_syntax": "template does not compile",
}


@pytest.mark.parametrize("dag_id", sorted(CASES))
def test_a_setting_no_retry_can_fix_fails_on_the_first_try(dag_id: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch, emulator: Any) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_LLM_KEYLESS", json.dumps({"conn_type": "openai",
                                                               "host": emulator.openai_base_url}))
    ti, output = _run_once(dag_id, tmp_path)
    assert (ti.state, ti.try_number) == ("failed", 1)
    assert output.startswith("AirflowFailException") and CASES[dag_id] in output


def test_min_success_rate_not_met_lands_once_and_fails_without_retry(tmp_path: Path, emulator: Any) -> None:
    emulator.set_fault_plan(FaultPlan(row_error_rate=0.5, row_error_code="invalid_request_error", seed=1))
    try:
        ti, output = _run_once("trust_min_success_rate", tmp_path)
    finally:
        emulator.clear_fault_plan()
    assert (ti.state, ti.try_number) == ("failed", 1)
    assert output.startswith("AirflowFailException") and "below min_success_rate=90%" in output
    assert "Not retried (a retry cannot fix this)" in output
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 20  # landed once, every row


def test_a_workspace_that_is_a_file_fails_without_retry_saying_so(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("not a folder")
    ti, output = _run_once("trust_workspace_is_a_file", tmp_path, workspace=f"file://{tmp_path}/taken")
    assert (ti.state, ti.try_number) == ("failed", 1)
    assert "workspace" in output and "is not a writable folder" in output


def test_nan_in_literal_rows_is_refused_when_the_dag_is_parsed() -> None:
    rows = [{"id": "a", "text": "fine"}, {"id": "b", "text": float("nan"), "meta": {"score": float("inf")}}]
    with pytest.raises(InvalidInputError) as caught:
        LLMBatchOperator(task_id="t", model="m", rows=rows, key="id", prompt="{{ row.text }}")
    message = str(caught.value)
    assert "row 1, column 'text' is nan" in message and "row 1, column 'meta'.score is inf" in message
    assert "replace NaN/inf with None" in message
