"""Triggers started together (a triggerer restart) spread their first polls instead of polling in one burst."""

from __future__ import annotations

from airflow_llm_batch.triggers.batch import FIRST_POLL_SPREAD_SECONDS, first_poll_delay


def test_first_polls_are_spread_within_the_interval() -> None:
    delays = [first_poll_delay(0.5) for _ in range(500)]
    assert all(0.0 <= d <= 0.5 for d in delays)
    assert max(delays) - min(delays) > 0.25, "spread over the interval, not one instant"


def test_a_long_interval_still_polls_first_within_the_spread_cap() -> None:
    delays = [first_poll_delay(600.0) for _ in range(500)]
    assert all(0.0 <= d <= FIRST_POLL_SPREAD_SECONDS for d in delays)
    assert max(delays) > FIRST_POLL_SPREAD_SECONDS / 2
