"""``deadline=`` in batch mode, in real Airflow (dag.test()) against the bundled emulator, counted on the
emulator's side: a deadline nearer than the batch's completion cancels the batch, keeps the rows it
answered, sends the rest in real time and lands every row, none paid twice (deferrable and on the
worker); a try that fails during the switch is finished by the next, with no batch created again and no
answered row resent; a far deadline changes nothing; with ``max_cost_usd`` the switch goes ahead when
the budget covers its real-time part, and otherwise keeps the batch (0 real-time calls on the emulator)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_llm_batch.emulator import Emulator, EmulatorConfig
from tests.airflow_helpers import run_dag, task_states, xcom

pytestmark = pytest.mark.usefixtures("airflow_db")

ROWS = 200
#: a batch answers 1 row per second (200 s for all), a cancel takes 1 s to end (cancelling -> cancelled)
SLOW_BATCH = EmulatorConfig(validating_seconds=0.1, requests_per_second=1.0, finalizing_seconds=0.1,
                            cancelling_seconds=1.0)
FAST_BATCH = SLOW_BATCH.replace(requests_per_second=20_000.0)
#: 4 rows per second: 50 s for all (the max_cost_usd tests)
MEDIUM_BATCH = SLOW_BATCH.replace(requests_per_second=4.0)


def _serve(config: EmulatorConfig, conn: str) -> Iterator[Emulator]:
    emu = Emulator(config)
    emu.start()
    name = f"AIRFLOW_CONN_{conn.upper()}"
    os.environ[name] = json.dumps({"conn_type": "llm_batch_openai", "password": "k", "host": emu.openai_base_url})
    try:
        yield emu
    finally:
        os.environ.pop(name, None)
        emu.stop()


@pytest.fixture(scope="module")
def slow() -> Iterator[Emulator]:
    yield from _serve(SLOW_BATCH, "dl_openai")


@pytest.fixture(scope="module")
def fast() -> Iterator[Emulator]:
    yield from _serve(FAST_BATCH, "dl_openai_fast")


@pytest.fixture(scope="module")
def medium() -> Iterator[Emulator]:
    yield from _serve(MEDIUM_BATCH, "dl_openai_medium")


def conf(tmp_path: Path, conn_id: str = "dl_openai") -> dict[str, Any]:
    rows = tmp_path / "in.jsonl"
    rows.write_text("".join(json.dumps({"id": f"dl-{i:04d}", "text": f"deadline question {i}"}) + "\n"
                            for i in range(ROWS)))
    return {"rows": f"file://{rows}", "destination": f"file://{tmp_path}/out.jsonl",
            "workspace": f"file://{tmp_path}/ws", "conn_id": conn_id}


def results(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]


def check_switched(emu: Emulator, run: Any, tmp_path: Path) -> None:
    """Every row landed once, part by the cancelled batch and the rest in real time, none paid twice."""
    assert task_states(run) == {"answer": "success"}
    rows = results(tmp_path)
    assert sorted(r["key"] for r in rows) == [f"dl-{i:04d}" for i in range(ROWS)]
    assert all(r["status"] == "succeeded" and r["output"] == f"deadline question {int(r['key'][3:])}"
               for r in rows)
    by_batch = {r["key"] for r in rows if r["answered_by"] == "batch"}
    by_realtime = {r["key"] for r in rows if r["answered_by"] == "realtime"}
    assert by_batch and by_realtime and len(by_batch) + len(by_realtime) == ROWS
    stats = emu.stats()
    paid_batch = stats["openai"]["succeeded_by_custom_id"]
    paid_realtime = stats["realtime"]["answered_by_custom_id"]
    assert stats["openai"]["batches_created"] == 1  # none created after the switch
    assert len(paid_batch) > 0 and len(paid_realtime) > 0  # the counters count before "none twice" is trusted
    assert set(paid_batch) == by_batch and set(paid_realtime) == by_realtime
    assert set(paid_batch).isdisjoint(paid_realtime) and len(paid_batch) + len(paid_realtime) == ROWS
    assert set(paid_batch.values()) == {1} and set(paid_realtime.values()) == {1}
    assert stats["realtime"]["bodies_paid_twice"] == 0 and stats["realtime"]["answered"] == len(by_realtime)
    assert stats["realtime"]["requests"] == len(by_realtime)  # no body sent again once answered
    summary = xcom(run, "answer")
    fallback = summary["deadline_fallback"]
    assert fallback["realtime_rows"] == len(by_realtime) and len(fallback["cancelled_batches"]) == 1
    assert summary["rows_by_path"] == {"batch": len(by_batch), "realtime": len(by_realtime), "cache": 0}


def test_a_near_deadline_cancels_the_batch_keeps_its_answers_and_sends_the_rest_in_real_time(
        slow: Emulator, tmp_path: Path) -> None:
    slow.reset_stats()
    run = run_dag("llmb_deadline_near", conf(tmp_path))
    check_switched(slow, run, tmp_path)


def test_the_worker_loop_switches_at_the_deadline_too(slow: Emulator, tmp_path: Path) -> None:
    slow.reset_stats()
    run = run_dag("llmb_deadline_near_worker", conf(tmp_path))
    check_switched(slow, run, tmp_path)


def test_a_try_failing_during_the_switch_is_finished_by_the_next_without_a_new_batch(
        slow: Emulator, tmp_path: Path) -> None:
    """The first real-time call of the switch is refused (401: the circuit breaker fails try 1 after the
    batch was cancelled and collected); try 2 resumes the recorded switch: it creates no batch, keeps
    the batch's answers and sends only the rows no one answered."""
    slow.reset_stats()
    slow.inject_fault(401, count=1, path_prefix="/v1/chat/completions")
    run = run_dag("llmb_deadline_near_retry", conf(tmp_path))
    assert run.get_task_instances()[0].try_number == 2
    assert slow.stats()["openai"]["http_errors_injected"] == 1  # the refusal happened (on a real-time call)
    check_switched(slow, run, tmp_path)


def test_a_far_deadline_lets_the_batch_complete(fast: Emulator, tmp_path: Path) -> None:
    fast.reset_stats()
    run = run_dag("llmb_deadline_far", conf(tmp_path, "dl_openai_fast"))
    assert task_states(run) == {"answer": "success"}
    rows = results(tmp_path)
    assert len(rows) == ROWS and {r["answered_by"] for r in rows} == {"batch"}
    stats = fast.stats()
    assert stats["openai"]["batches_created"] == 1 and len(stats["openai"]["succeeded_by_custom_id"]) == ROWS
    assert stats["realtime"]["requests"] == 0 and stats["realtime"]["answered"] == 0
    assert xcom(run, "answer")["deadline_fallback"] is None


def test_a_budget_that_covers_the_real_time_part_lets_the_switch_go_ahead(medium: Emulator, tmp_path: Path) -> None:
    medium.reset_stats()
    run = run_dag("llmb_deadline_budget_covers", conf(tmp_path, "dl_openai_medium"))
    check_switched(medium, run, tmp_path)
    assert xcom(run, "answer")["deadline_fallback"]["switched"] is True


def test_a_budget_short_of_the_real_time_part_keeps_the_batch_and_sends_nothing_in_real_time(
        medium: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    medium.reset_stats()
    with caplog.at_level(logging.WARNING, logger="airflow_llm_batch.operators.fallback_budget"):
        run = run_dag("llmb_deadline_budget_short", conf(tmp_path, "dl_openai_medium"))
    assert task_states(run) == {"answer": "success"}
    rows = results(tmp_path)
    assert sorted(r["key"] for r in rows) == [f"dl-{i:04d}" for i in range(ROWS)]
    assert {r["answered_by"] for r in rows} == {"batch"} and {r["status"] for r in rows} == {"succeeded"}
    stats = medium.stats()
    assert stats["openai"]["batches_created"] == 1 and len(stats["openai"]["succeeded_by_custom_id"]) == ROWS
    assert set(stats["openai"]["succeeded_by_custom_id"].values()) == {1}  # the batch ran to its end, not cancelled
    assert stats["realtime"]["requests"] == 0 and stats["realtime"]["answered"] == 0
    fallback = xcom(run, "answer")["deadline_fallback"]
    assert fallback["switched"] is False and fallback["reason"] == "over max_cost_usd"
    assert fallback["budget_usd"] == 0.12 and fallback["estimate_usd"] > 0.12 and fallback["rows_left"] > 0
    assert fallback["cancelled_batches"] == [] and fallback["realtime_rows"] == 0
    warnings = [r.getMessage() for r in caplog.records if "Deadline fallback NOT taken" in r.getMessage()]
    assert len(warnings) == 1  # once, however many turns the wait takes
    assert "against max_cost_usd=$0.1200" in warnings[0] and f"{fallback['rows_left']:,} row(s) left" in warnings[0]
