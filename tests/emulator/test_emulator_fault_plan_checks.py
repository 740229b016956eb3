"""Unit tests of the fault plan field checks (:mod:`emulator.fault_plan_checks`)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_llm_batch.emulator.fault_plan_checks import (
    MAX_HANG_SECONDS,
    check_lost_create_status,
    count,
    error_statuses,
    hang_seconds,
    number,
    share,
    slow_factor,
)
from airflow_llm_batch.emulator.faults import FaultPlan


def test_number_refuses_booleans_and_strings_and_floats_for_integers() -> None:
    assert number("x", 2) == 2.0 and isinstance(number("x", 2), float)
    assert number("x", 2, integer=True) == 2 and isinstance(number("x", 2, integer=True), int)
    for bad, integer in ((True, False), ("1", False), (1.5, True), (False, True)):
        with pytest.raises(TypeError, match="x must be"):
            number("x", bad, integer=integer)


def test_share_is_a_number_in_zero_to_one() -> None:
    assert share("rate", 1) == 1.0 and share("rate", 0) == 0.0
    with pytest.raises(ValueError, match="rate must be between 0 and 1"):
        share("rate", 1.01)


def test_count_refuses_negative_numbers() -> None:
    count("n", 0)
    with pytest.raises(ValueError, match="n must be >= 0"):
        count("n", -1)


def test_slow_factor_and_hang_seconds_bounds() -> None:
    assert slow_factor(2) == 2.0
    for bad in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="slow_factor must be > 0"):
            slow_factor(bad)
    assert hang_seconds(MAX_HANG_SECONDS) == MAX_HANG_SECONDS
    for bad in (0, MAX_HANG_SECONDS + 1):
        with pytest.raises(ValueError, match="hang_seconds"):
            hang_seconds(bad)


@pytest.mark.parametrize("status", [0, 500, 502, 599])
def test_lost_create_status_accepts_dropped_or_ambiguous_5xx(status: int) -> None:
    check_lost_create_status(status)


@pytest.mark.parametrize("status", [503, 529, 429, 400, 600])
def test_lost_create_status_refuses_statuses_that_promise_nothing_was_created(status: int) -> None:
    with pytest.raises(ValueError, match="lost_create_status"):
        check_lost_create_status(status)


def test_error_statuses_become_a_tuple_of_http_errors() -> None:
    assert error_statuses([429, 500]) == (429, 500)
    assert error_statuses(iter([503])) == (503,)
    for bad_type in ("500", 500, None):
        with pytest.raises(TypeError, match="http_error_statuses"):
            error_statuses(bad_type)
    for bad_value in ([], [399], [600]):
        with pytest.raises(ValueError, match="http_error_statuses"):
            error_statuses(bad_value)


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"row_error_rate": 2}, ValueError),
        ({"seed": 1.5}, TypeError),
        ({"hung_creates": -1}, ValueError),
        ({"row_error_code": ""}, ValueError),
        ({"enqueued_token_limit": 0}, ValueError),
        ({"http_error_statuses": "429"}, TypeError),
        ({"lost_create_status": 503}, ValueError),
    ],
)
def test_the_plan_runs_every_check(fields: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        FaultPlan(**fields)


def test_the_plan_keeps_checked_values() -> None:
    plan = FaultPlan(row_error_rate=1, slow_factor=2, hang_seconds=1, http_error_statuses=[500])
    assert (plan.row_error_rate, plan.slow_factor, plan.hang_seconds, plan.http_error_statuses) == (
        1.0, 2.0, 1.0, (500,))
    assert isinstance(plan.row_error_rate, float)
