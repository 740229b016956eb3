"""Deadlines: parsing the forms a DAG author writes, and when the real-time fallback is due."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_llm_batch.realtime.deadline import TYPICAL_LATENCY_SECONDS, Fallback, deadline_at, realtime_rate

START = datetime(2026, 12, 1, 1, 0, tzinfo=timezone.utc)


def test_a_deadline_is_a_timedelta_from_the_start_or_an_absolute_time() -> None:
    assert deadline_at(timedelta(hours=6), START) == datetime(2026, 12, 1, 7, 0, tzinfo=timezone.utc)
    assert deadline_at("2026-12-01T07:00:00+01:00", START) == datetime(2026, 12, 1, 6, 0, tzinfo=timezone.utc)
    assert deadline_at(datetime(2026, 12, 1, 7, 0), START) == datetime(2026, 12, 1, 7, 0, tzinfo=timezone.utc)
    assert deadline_at(None, START) is None and deadline_at("", START) is None


def test_a_deadline_that_is_not_a_time_says_what_to_write() -> None:
    with pytest.raises(ValueError, match="ISO-8601"):
        deadline_at("tomorrow at seven", START)


def test_the_fallback_is_due_when_what_is_left_needs_the_time_that_is_left() -> None:
    fallback = Fallback(at=datetime(2026, 12, 1, 7, 0, tzinfo=timezone.utc), realtime_rows_per_second=10,
                        margin=timedelta(minutes=5))
    # 3,000 rows at 10/s need 5 min; with a 5-min margin the switch is at 06:50
    assert fallback.switch_at(3_000) == datetime(2026, 12, 1, 6, 50, tzinfo=timezone.utc)
    assert not fallback.is_due(datetime(2026, 12, 1, 6, 49, tzinfo=timezone.utc), 3_000)
    assert fallback.is_due(datetime(2026, 12, 1, 6, 50, tzinfo=timezone.utc), 3_000)
    assert not fallback.is_due(datetime(2026, 12, 1, 6, 59, tzinfo=timezone.utc), 0)
    assert "3,000 row(s) left need ~300 s" in fallback.describe(3_000)


def test_real_time_is_assumed_to_answer_max_concurrency_rows_per_typical_latency_capped_by_the_rate_limit() -> None:
    assert TYPICAL_LATENCY_SECONDS == 2.0
    assert realtime_rate(16) == 8.0
    assert realtime_rate(16, requests_per_minute=120) == 2.0  # 120/min is 2 rows/s, under 8
    assert realtime_rate(16, requests_per_minute=6_000) == 8.0
