"""When a batch-mode run with ``deadline=`` gives way to real-time (operators/deadline_fallback.py), computed
directly: deadline - rows still open / (max_concurrency / 2 s, capped by requests_per_minute) - 5 min."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow_llm_batch.operators.deadline_fallback import (
    fallback_due,
    fallback_plan,
    rows_open,
    switch_message,
    switch_time,
)
from airflow_llm_batch.operators.fallback_budget import FallbackBill, describe_bill
from airflow_llm_batch.operators.settings import RealtimeSettings
from airflow_llm_batch.pipeline.manifest import ChunkRecord, ChunkState, Manifest
from airflow_llm_batch.realtime.decision import AutoRule, Mode

START = datetime(2026, 12, 1, 1, 0, tzinfo=timezone.utc)


def manifest(*states: str, mode: str = "batch") -> Manifest:
    chunks = [ChunkRecord(index=i, count=1_000, bytes=1, requests=f"c{i}", keys=f"k{i}", state=state)
              for i, state in enumerate(states)]
    return Manifest(provider="openai", model="m", run_tag="t", digest="d", total_rows=1_000 * len(states),
                    chunks=chunks, mode={"mode": mode, "reason": "r", "rows": 1})


def settings(deadline: object, max_concurrency: int = 20, requests_per_minute: int | None = None) -> RealtimeSettings:
    return RealtimeSettings("t", Mode.BATCH, max_concurrency, requests_per_minute, None, deadline,  # type: ignore[arg-type]
                            AutoRule.expected_batch_turnaround)


def at(hour: int, minute: int, second: int = 0) -> float:
    return datetime(2026, 12, 1, hour, minute, second, tzinfo=timezone.utc).timestamp()


def test_the_switch_leaves_real_time_the_time_the_open_rows_need_plus_a_margin() -> None:
    # 3,000 open rows (one collected chunk does not count) at 20 / 2 s = 10 rows/s need 5 min; margin 5 min
    run = manifest(ChunkState.SUBMITTED, ChunkState.SUBMITTED, ChunkState.PREPARED, ChunkState.COLLECTED)
    assert rows_open(run) == 3_000
    assert switch_time(run, settings(timedelta(hours=6)), START) == at(6, 50)
    assert switch_time(run, settings("2026-12-01T07:00:00Z"), START) == at(6, 50)
    # requests_per_minute=300 caps real-time at 5 rows/s: 10 min needed, the switch comes 5 min earlier
    assert switch_time(run, settings(timedelta(hours=6), requests_per_minute=300), START) == at(6, 45)


def test_no_switch_without_a_deadline_or_outside_batch_mode() -> None:
    run = manifest(ChunkState.SUBMITTED)
    assert switch_time(run, settings(None), START) is None
    assert switch_time(manifest(ChunkState.PREPARED, mode="realtime"), settings(timedelta(hours=6)), START) is None


def test_the_switch_is_due_at_its_time_with_rows_open_or_once_a_try_started_it() -> None:
    run = manifest(ChunkState.SUBMITTED)
    assert not fallback_due(run, at(6, 50), at(6, 49, 59))
    assert fallback_due(run, at(6, 50), at(6, 50))
    assert not fallback_due(run, None, at(6, 50))
    assert not fallback_due(manifest(ChunkState.COLLECTED), at(6, 50), at(6, 55))  # nothing left to send
    run.deadline_fallback = {"at": at(6, 50)}  # an earlier try began the switch: finish it, whatever the time
    assert fallback_due(run, None, at(6, 0))


def test_the_switch_says_when_how_much_and_how_long() -> None:
    plan = fallback_plan(manifest(ChunkState.SUBMITTED), settings(timedelta(hours=6)), START)
    assert plan is not None
    message = switch_message(plan, 3, 1_234)
    assert message.startswith("deadline 07:00 UTC: 3 batch(es) still open at ")
    assert "the up to 1,234 unanswered row(s) in real time (estimated 2 min)" in message


def test_a_switch_declined_over_budget_is_never_due_and_plans_no_wake_up() -> None:
    run = manifest(ChunkState.SUBMITTED)
    run.deadline_fallback = {"switched": False, "reason": "over max_cost_usd"}
    assert not fallback_due(run, at(6, 50), at(6, 55))
    assert switch_time(run, settings(timedelta(hours=6)), START) is None  # the trigger waits for the batch


def test_the_fallback_bill_is_paid_so_far_plus_the_rows_left_at_the_real_time_price() -> None:
    within = FallbackBill(spent_usd=0.01, realtime_usd=0.02, rows_left=150, budget_usd=0.03)
    over = FallbackBill(spent_usd=0.01, realtime_usd=0.021, rows_left=150, budget_usd=0.03)
    unknown = FallbackBill(spent_usd=None, realtime_usd=None, rows_left=150, budget_usd=1.0)
    assert within.within_budget and not over.within_budget
    assert not unknown.within_budget  # an unknown price moves no money
    assert "150 row(s) left in real time brings the run to ~$0.0310 (paid $0.0100 + real-time ~$0.0210) " \
           "against max_cost_usd=$0.0300" in describe_bill(over)
    assert "cannot be priced" in describe_bill(unknown)
