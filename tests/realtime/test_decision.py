"""mode="auto": the rule, its reason and the money at stake."""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow_llm_batch.pipeline.cost import estimate_cost
from airflow_llm_batch.pipeline.prices import ModelPrice
from airflow_llm_batch.realtime.decision import AutoRule, Mode, decide_mode

PRICE = ModelPrice(input=1.0, cached_input=1.0, output=2.0, batch_input=0.5, batch_cached_input=0.5, batch_output=1.0)


def _estimate(rows: int):  # type: ignore[no-untyped-def]
    return estimate_cost(PRICE, rows=rows, input_tokens=rows * 1000, expected_output_tokens_per_row=100,
                         max_output_tokens_per_row=None)


def test_small_runs_go_real_time_large_runs_go_batch() -> None:
    small = decide_mode(Mode.AUTO, rows=50, has_batch_api=True, estimate=_estimate(50))
    large = decide_mode(Mode.AUTO, rows=5_000, has_batch_api=True, estimate=_estimate(5_000))
    assert small.mode is Mode.REALTIME and "fewer than 100 rows" in small.reason
    assert large.mode is Mode.BATCH
    assert large.extra_usd == pytest.approx(5_000 * (1000 * 0.5 + 100 * 1.0) / 1e6)
    assert "batch ~$" in large.describe() and "mode=batch for 5,000 row(s)" in large.describe()


def test_a_deadline_a_batch_cannot_meet_goes_real_time() -> None:
    rule = AutoRule(expected_batch_turnaround=timedelta(hours=2))
    tight = decide_mode(Mode.AUTO, rows=5_000, has_batch_api=True, seconds_to_deadline=3_000, rule=rule)
    loose = decide_mode(Mode.AUTO, rows=5_000, has_batch_api=True, seconds_to_deadline=6 * 3600, rule=rule)
    assert tight.mode is Mode.REALTIME and "deadline is in 50 min" in tight.reason and "2.0 h" in tight.reason
    assert loose.mode is Mode.BATCH and "fits the deadline" in loose.reason


def test_a_server_without_batch_api_is_always_real_time_and_refuses_mode_batch() -> None:
    assert decide_mode(Mode.AUTO, rows=1_000_000, has_batch_api=False).mode is Mode.REALTIME
    with pytest.raises(ValueError, match="no batch API"):
        decide_mode(Mode.BATCH, rows=10, has_batch_api=False)


def test_an_explicit_mode_is_kept_and_nothing_to_send_stays_batch() -> None:
    assert decide_mode(Mode.REALTIME, rows=10_000, has_batch_api=True).reason == "set by mode='realtime'"
    assert decide_mode(Mode.AUTO, rows=0, has_batch_api=True).mode is Mode.BATCH
    assert decide_mode(Mode.AUTO, rows=10, has_batch_api=True).to_dict()["extra_usd"] is None


def test_mode_names_are_checked() -> None:
    assert Mode.parse("AUTO") is Mode.AUTO
    with pytest.raises(ValueError, match="use one of"):
        Mode.parse("fast")
