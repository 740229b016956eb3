"""A broken Anthropic results line in real Airflow: the collect goes on, the row the line belonged to ends
``missing_result`` and is sent again, and every row ends with one result, none paid twice (counted on the
emulator's side). Before, the SDK's results stream raised on such a line and failed the whole collect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_llm_batch.emulator import Emulator, FaultPlan
from tests.faults.matrix import assert_promises, run_job
from tests.faults.rows import PROVIDER_JOBS

pytestmark = pytest.mark.usefixtures("airflow_db")


def test_broken_anthropic_results_lines_are_resent_not_fatal(
        emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    job = PROVIDER_JOBS["anthropic"]
    monkeypatch.setenv(f"AIRFLOW_CONN_{job.conn_id.upper()}", json.dumps(
        {"conn_type": "anthropic", "password": "k", "host": emulator.anthropic_base_url}))
    plan = FaultPlan(malformed_output_rate=0.1, seed=4)
    prefix = "am-"
    broken = sum(plan.malformed_selected(f"{prefix}{i:05d}") for i in range(job.rows))
    assert broken > 0
    malformed_before = emulator.stats()["anthropic"]["malformed_lines"]
    outcome = run_job(emulator, job.dag_id, plan, tmp_path, stats_key=job.stats_key, count=job.rows, prefix=prefix)
    assert emulator.stats()["anthropic"]["malformed_lines"] - malformed_before == broken
    assert_promises(outcome, job.rows, prefix)
    assert outcome.state == "success" and {r["status"] for r in outcome.results} == {"succeeded"}
    assert outcome.summary["resubmitted_rows"] == broken
    assert set(outcome.paid.values()) == {1} and len(outcome.paid) == job.rows
