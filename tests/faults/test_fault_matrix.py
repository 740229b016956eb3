"""The fault matrix (README "Failures, retries and crashes"): each fault injected in the emulator,
the same 1,200-row job run in real Airflow, and for every fault the two promises checked on the
emulator's side: every input row ends with exactly one final result, and no request was paid twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_llm_batch.emulator import FaultPlan
from tests.faults import rows as job
from tests.faults.matrix import Outcome, assert_promises, run_job

pytestmark = pytest.mark.usefixtures("airflow_db")


@pytest.fixture
def run_with(emulator: Any, tmp_path: Path) -> Iterator[Any]:
    def _run(dag_id: str, plan: FaultPlan) -> Outcome:
        outcome = run_job(emulator, dag_id, plan, tmp_path)
        outcome.batch_statuses = Counter(_status(emulator, b) for b in outcome.new_batch_ids)
        return outcome

    yield _run
    emulator.clear_fault_plan()


def _status(emulator: Any, batch_id: str) -> str:
    from openai import OpenAI

    with OpenAI(base_url=emulator.openai_base_url, api_key="k") as client:
        return client.batches.retrieve(batch_id).status


def test_ten_percent_retryable_row_errors_all_succeed_on_attempt_two(run_with: Any) -> None:
    outcome = run_with("faults_default", FaultPlan(row_error_rate=0.10, row_error_code="server_error",
                                                   row_error_times=1, seed=1))
    assert_promises(outcome)
    assert outcome.state == "success"
    assert {r["status"] for r in outcome.results} == {"succeeded"}
    retried = [r for r in outcome.results if r["attempts"] == 2]
    assert 0.05 * job.ROWS < len(retried) < 0.15 * job.ROWS
    assert outcome.summary["resubmitted_rows"] == len(retried)
    assert all(outcome.sent[r["key"]] == 2 for r in retried)


def test_five_percent_permanent_errors_fail_those_rows_and_resend_nothing(run_with: Any) -> None:
    outcome = run_with("faults_default", FaultPlan(row_error_rate=0.05, row_error_code="invalid_request_error",
                                                   row_error_times=0, seed=2))
    assert_promises(outcome)
    failed = [r for r in outcome.results if r["status"] == "failed"]
    assert 0.02 * job.ROWS < len(failed) < 0.08 * job.ROWS
    assert {r["error"]["code"] for r in failed} == {"invalid_request_error"}
    assert set(outcome.sent.values()) == {1}, "a permanent failure was sent again"
    assert outcome.state == "success" and outcome.summary["failed"] == len(failed)


def test_expiry_with_sixty_percent_done_resends_the_rest(run_with: Any) -> None:
    outcome = run_with("faults_default", FaultPlan(expire_batches=1, expire_done_fraction=0.6))
    assert_promises(outcome)
    assert outcome.state == "success" and {r["status"] for r in outcome.results} == {"succeeded"}
    assert outcome.batch_statuses["expired"] == 1
    resent = [k for k, n in outcome.sent.items() if n == 2]
    assert 0.3 * job.CHUNK < len(resent) <= 0.4 * job.CHUNK + 1


def test_thirty_percent_transient_http_errors_on_every_endpoint_complete(run_with: Any) -> None:
    outcome = run_with("faults_default", FaultPlan(http_error_rate=0.30, seed=3))
    assert_promises(outcome)
    assert outcome.state == "success" and {r["status"] for r in outcome.results} == {"succeeded"}
    assert outcome.batches == job.ROWS // job.CHUNK, "a batch was created twice"


def test_enqueued_token_limit_of_a_quarter_completes_without_a_failed_batch(run_with: Any) -> None:
    from tests.dags.fault_matrix_dags import QUARTER_BUDGET

    outcome = run_with("faults_budget", FaultPlan(enqueued_token_limit=QUARTER_BUDGET))
    assert_promises(outcome)
    assert outcome.state == "success" and {r["status"] for r in outcome.results} == {"succeeded"}
    assert outcome.batch_statuses["failed"] == 0 and outcome.batches >= 4
    assert set(outcome.sent.values()) == {1}


def test_enqueued_token_limit_without_a_budget_requeues_refused_batches(run_with: Any) -> None:
    outcome = run_with("faults_default", FaultPlan(enqueued_token_limit=job.emulator_prompt_tokens() // 2))
    assert_promises(outcome)
    assert outcome.state == "success" and {r["status"] for r in outcome.results} == {"succeeded"}
    assert outcome.batch_statuses["failed"] >= 1 and outcome.summary["requeued_batches"] >= 1


def test_malformed_output_lines_are_resent(run_with: Any) -> None:
    outcome = run_with("faults_default", FaultPlan(malformed_output_rate=0.05, seed=4))
    assert_promises(outcome)
    assert outcome.state == "success" and {r["status"] for r in outcome.results} == {"succeeded"}
    assert outcome.summary["resubmitted_rows"] > 0


def test_auth_failure_on_every_row_trips_the_breaker_after_one_batch(run_with: Any) -> None:
    outcome = run_with("faults_one_at_a_time", FaultPlan(row_error_rate=1.0, row_error_code="authentication_error",
                                                         row_error_times=0))
    assert_promises(outcome)
    assert outcome.state == "failed" and outcome.batches == 1
    codes = Counter(r["error"]["code"] for r in outcome.results)
    assert codes == {"authentication_error": job.CHUNK, "not_submitted": job.ROWS - job.CHUNK}
