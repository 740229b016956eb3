"""The pure parts of the run-time alerts (operators/alerts.py) and the metrics read from run facts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from airflow_llm_batch.operators.alerts import call_on_stuck, success_rate_lost, warn_after_seconds
from airflow_llm_batch.pipeline.summary import RunSummary
from airflow_llm_batch.pipeline.types import Usage


def summary(total: int, succeeded: int, failed: int) -> RunSummary:
    return RunSummary(total=total, succeeded=succeeded, failed=failed, errors_by_code={}, usage=Usage(), batch_ids=[])


@pytest.mark.parametrize(("failed", "lost"), [(10, False), (11, True)])
def test_the_rate_is_lost_only_when_every_unanswered_row_succeeding_cannot_reach_it(failed: int, lost: bool) -> None:
    assert success_rate_lost(summary(100, 20, failed), 0.9) is lost


def test_no_minimum_or_no_rows_never_loses() -> None:
    assert not success_rate_lost(summary(100, 0, 100), None)
    assert not success_rate_lost(summary(0, 0, 0), 0.9)


def test_warn_after_accepts_timedelta_seconds_or_none_and_names_the_task() -> None:
    assert warn_after_seconds("t", timedelta(hours=12)) == 43_200.0
    assert warn_after_seconds("t", 0) == 0.0
    assert warn_after_seconds("t", None) is None
    with pytest.raises(ValueError, match="t: warn_after"):
        warn_after_seconds("t", -1)


def test_a_failing_callback_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    def broken(info: dict[str, Any]) -> None:
        raise RuntimeError("slack is down")

    call_on_stuck(broken, {"batch_ids": ["b1"]}, logging.getLogger("alerts-test"))
    assert "on_stuck_batch failed (RuntimeError: slack is down)" in caplog.text
