"""``deadline_margin`` and ``realtime_latency_estimate``: checked when the DAG is parsed, carried by
RealtimeSettings (also through ``@task.llm_batch_job``), and used by the batch-mode fallback's switch time
and by ``mode="auto"``'s deadline reason."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import DAG, task

from airflow_llm_batch.operators import LLMBatchOperator
from airflow_llm_batch.operators.deadline_fallback import fallback_plan, switch_time
from airflow_llm_batch.operators.settings import RealtimeSettings
from airflow_llm_batch.pipeline.manifest import ChunkRecord, ChunkState, Manifest
from airflow_llm_batch.realtime.decision import Mode, decide_mode

START = datetime(2026, 12, 1, 1, 0, tzinfo=timezone.utc)
BASE: dict[str, Any] = {"task_id": "t", "model": "gpt-4o-mini", "rows": [{"id": "a", "text": "x"}],
                        "prompt": "{{ row.text }}"}


def open_rows(rows: int) -> Manifest:
    chunk = ChunkRecord(index=0, count=rows, bytes=1, requests="c", keys="k", state=ChunkState.SUBMITTED)
    return Manifest(provider="openai", model="m", run_tag="t", digest="d", total_rows=rows, chunks=[chunk],
                    mode={"mode": "batch", "reason": "r", "rows": rows})


def test_the_defaults_are_five_minutes_and_two_seconds() -> None:
    settings = RealtimeSettings.of(LLMBatchOperator(**BASE))
    assert settings.deadline_margin == timedelta(minutes=5) and settings.realtime_latency_estimate == 2.0
    assert settings.rows_per_second == 8.0  # max_concurrency 16 / 2 s


def test_the_knobs_move_the_fallbacks_switch_time() -> None:
    # 3,600 open rows, 20 in flight at 0.5 s each = 40 rows/s: 90 s; the margin is 1 minute
    op = LLMBatchOperator(**BASE, max_concurrency=20, deadline=timedelta(hours=6),
                          deadline_margin=timedelta(minutes=1), realtime_latency_estimate=0.5)
    settings = RealtimeSettings.of(op)
    plan = fallback_plan(open_rows(3_600), settings, START)
    assert plan is not None and plan.margin == timedelta(minutes=1) and plan.realtime_rows_per_second == 40.0
    expected = START + timedelta(hours=6) - timedelta(seconds=90) - timedelta(minutes=1)
    assert switch_time(open_rows(3_600), settings, START) == expected.timestamp()
    # the same run with the defaults (5 min, 2 s: 10 rows/s, 6 min) switches 8 min 30 s earlier
    default = RealtimeSettings.of(LLMBatchOperator(**BASE, max_concurrency=20, deadline=timedelta(hours=6)))
    assert switch_time(open_rows(3_600), default, START) == (expected - timedelta(minutes=8, seconds=30)).timestamp()


def test_a_margin_in_seconds_is_read_as_a_timedelta_and_zero_is_allowed() -> None:
    assert RealtimeSettings.of(LLMBatchOperator(**BASE, deadline_margin=90)).deadline_margin == timedelta(seconds=90)
    assert RealtimeSettings.of(LLMBatchOperator(**BASE, deadline_margin=0)).deadline_margin == timedelta(0)


def test_auto_says_how_long_real_time_should_take_from_the_latency_estimate() -> None:
    # 6,000 rows, 16 in flight at 4 s each = 4 rows/s: 25 min; the deadline is in 50 min, a batch takes 2 h
    settings = RealtimeSettings.of(LLMBatchOperator(**BASE, mode="auto", realtime_latency_estimate=4.0))
    decision = decide_mode(Mode.AUTO, rows=6_000, has_batch_api=True, seconds_to_deadline=3_000, rule=settings.rule)
    assert decision.mode is Mode.REALTIME
    assert "real-time should take ~25 min (realtime_latency_estimate)" in decision.reason
    assert "after the deadline" not in decision.reason
    slow = RealtimeSettings.of(LLMBatchOperator(**BASE, mode="auto", realtime_latency_estimate=16.0))
    late = decide_mode(Mode.AUTO, rows=6_000, has_batch_api=True, seconds_to_deadline=3_000, rule=slow.rule)
    assert "~1.7 h (realtime_latency_estimate) and may land after the deadline too" in late.reason


def test_the_decorator_passes_the_knobs_through() -> None:
    with DAG("llmb_knobs_decorator", schedule=None, start_date=datetime(2026, 1, 1)):
        @task.llm_batch_job(model="gpt-4o-mini", prompt="{{ row.text }}", deadline=timedelta(hours=1),
                            deadline_margin=timedelta(seconds=30), realtime_latency_estimate=0.25)
        def rows() -> list[dict[str, str]]:
            return [{"text": "x"}]

        op = rows().operator
    settings = RealtimeSettings.of(op)
    assert settings.deadline_margin == timedelta(seconds=30) and settings.realtime_latency_estimate == 0.25
