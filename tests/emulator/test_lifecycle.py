"""The batch timeline kernel (:mod:`airflow_llm_batch.emulator.lifecycle`), driven directly.

Times are exact binary fractions so every boundary is checked without rounding doubt.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from airflow_llm_batch.emulator import EmulatorConfig
from airflow_llm_batch.emulator.faults import BatchFaults, FaultPlan
from airflow_llm_batch.emulator.lifecycle import Phase, Snapshot, Timeline

BASE = Timeline(
    created=100.0, validating_seconds=1.0, rate=8.0, finalizing_seconds=0.5, cancelling_seconds=0.25, total=16
)
"""Validates 100-101, answers 16 rows at 8/s (101-103), finalizes 103-103.5."""


@pytest.mark.parametrize(
    ("now", "phase", "answered"),
    [
        (100.0, Phase.VALIDATING, 0),
        (100.999, Phase.VALIDATING, 0),
        (101.0, Phase.IN_PROGRESS, 0),
        (101.5, Phase.IN_PROGRESS, 4),
        (102.875, Phase.IN_PROGRESS, 15),
        (103.0, Phase.FINALIZING, 16),
        (103.25, Phase.FINALIZING, 16),
        (103.5, Phase.COMPLETED, 16),
        (500.0, Phase.COMPLETED, 16),
    ],
)
def test_phases_and_rows_answered_over_time(now: float, phase: Phase, answered: int) -> None:
    snapshot = BASE.at(now)
    assert (snapshot.phase, snapshot.answered) == (phase, answered)


def test_stamps_of_a_completed_batch() -> None:
    assert BASE.at(100.5) == Snapshot(Phase.VALIDATING, 0)
    assert BASE.at(102.0) == Snapshot(Phase.IN_PROGRESS, 8, started_at=101.0)
    assert BASE.at(104.0) == Snapshot(Phase.COMPLETED, 16, started_at=101.0, finalizing_at=103.0, ended_at=103.5)
    assert Phase.COMPLETED.ended and not Phase.FINALIZING.ended


def test_answered_at_is_the_pace_of_each_row() -> None:
    assert BASE.answered_at(0) == 101.125
    assert BASE.answered_at(15) == 103.0
    assert BASE.rows_end == 103.0


def test_invalid_input_fails_when_validation_ends() -> None:
    timeline = BASE.failed()
    assert timeline.at(100.5).phase is Phase.VALIDATING
    assert timeline.at(101.0) == Snapshot(Phase.FAILED, 0, ended_at=101.0)


def test_expiry_before_the_last_row_keeps_the_rows_answered() -> None:
    timeline = replace(BASE, expires_at=102.0)
    assert timeline.at(101.75) == Snapshot(Phase.IN_PROGRESS, 6, started_at=101.0)
    assert timeline.at(102.0) == Snapshot(Phase.EXPIRED, 8, started_at=101.0, ended_at=102.0)


def test_expiry_during_validation_answers_nothing() -> None:
    timeline = replace(BASE, expires_at=101.0)
    assert timeline.at(100.5).phase is Phase.VALIDATING
    assert timeline.at(101.0) == Snapshot(Phase.EXPIRED, 0, ended_at=101.0)
    assert timeline.failed().at(101.0).phase is Phase.EXPIRED  # expiry comes first, as the kernel reads it


def test_expiry_after_the_last_row_does_not_stop_a_finalizing_batch() -> None:
    """The one expiry rule: only a batch with rows left (or not started) expires."""
    timeline = replace(BASE, expires_at=103.25)
    assert timeline.at(103.25).phase is Phase.FINALIZING
    assert timeline.at(103.5) == Snapshot(Phase.COMPLETED, 16, started_at=101.0, finalizing_at=103.0, ended_at=103.5)


def test_fault_expiry_ends_the_batch_once_its_rows_are_answered() -> None:
    plan = FaultPlan(expire_batches=1, expire_done_fraction=0.25)
    timeline = BASE.with_rows(16, BatchFaults(plan, expires=True))
    assert timeline.fault_expiry_rows == 4
    assert timeline.at(101.25) == Snapshot(Phase.IN_PROGRESS, 2, started_at=101.0)
    assert timeline.at(101.5) == Snapshot(Phase.EXPIRED, 4, started_at=101.0, ended_at=101.5)


def test_configured_expiry_before_the_fault_expiry_wins() -> None:
    plan = FaultPlan(expire_batches=1, expire_done_fraction=0.75)
    timeline = replace(BASE, expires_at=101.5).with_rows(16, BatchFaults(plan, expires=True))
    assert timeline.at(101.5) == Snapshot(Phase.EXPIRED, 4, started_at=101.0, ended_at=101.5)


def test_a_slow_fault_plan_divides_the_pace() -> None:
    timeline = BASE.with_rows(16, BatchFaults(FaultPlan(slow_factor=2.0)))
    assert timeline.rate == 4.0 and timeline.rows_end == 105.0
    assert timeline.at(102.0).answered == 4


def test_cancel_stops_answering_and_ends_after_cancelling_seconds() -> None:
    timeline = BASE.cancel(101.5)
    assert timeline.cancel(102.0).cancelled_at == 101.5  # a second ask changes nothing
    assert timeline.at(101.25) == Snapshot(Phase.IN_PROGRESS, 2, started_at=101.0)
    assert timeline.at(101.5) == Snapshot(Phase.CANCELLING, 4, started_at=101.0)
    assert timeline.at(101.7) == Snapshot(Phase.CANCELLING, 4, started_at=101.0)
    assert timeline.at(101.75) == Snapshot(Phase.CANCELLED, 4, started_at=101.0, ended_at=101.75)


def test_cancel_during_validation_never_starts_the_rows() -> None:
    timeline = BASE.cancel(100.5)
    assert timeline.at(100.5) == Snapshot(Phase.CANCELLING, 0)
    assert timeline.at(105.0) == Snapshot(Phase.CANCELLED, 0, ended_at=100.75)


def test_cancel_while_finalizing_keeps_every_row_and_the_finalizing_stamp() -> None:
    timeline = BASE.cancel(103.25)
    assert timeline.at(103.4) == Snapshot(Phase.CANCELLING, 16, started_at=101.0, finalizing_at=103.0)
    assert timeline.at(103.5).phase is Phase.CANCELLED and timeline.at(103.5).ended_at == 103.5


def test_cancel_beats_a_later_expiry() -> None:
    timeline = replace(BASE, expires_at=101.6).cancel(101.5)
    assert timeline.at(101.6).phase is Phase.CANCELLING
    assert timeline.at(101.75).phase is Phase.CANCELLED


def test_rows_unknown_until_read() -> None:
    """A Vertex job learns its rows when validation ends: it starts, then runs on them."""
    unread = Timeline(created=0.0, validating_seconds=1.0, rate=4.0, finalizing_seconds=0.0, cancelling_seconds=0.0)
    assert unread.at(0.5) == Snapshot(Phase.VALIDATING, 0)
    assert unread.at(1.0) == Snapshot(Phase.IN_PROGRESS, 0, started_at=1.0)
    read = unread.with_rows(4, None)
    assert read.at(1.5).answered == 2 and read.at(2.0).phase is Phase.COMPLETED


def test_last_change_follows_the_batch() -> None:
    assert BASE.last_change(100.5) == 100.0
    assert BASE.last_change(102.0) == 102.0
    assert BASE.last_change(103.25) == 103.0
    assert BASE.last_change(200.0) == 103.5
    assert BASE.cancel(101.5).last_change(101.6) == 101.5


def test_for_batch_reads_the_config() -> None:
    config = EmulatorConfig(validating_seconds=2.0, requests_per_second=10.0, expire_after_seconds=30.0)
    timeline = Timeline.for_batch(50.0, config, total=5)
    assert (timeline.starts_at, timeline.rate, timeline.expires_at, timeline.total) == (52.0, 10.0, 80.0, 5)
    assert Timeline.for_batch(50.0, config, validates=False, total=5).starts_at == 50.0
    assert Timeline.for_batch(50.0, EmulatorConfig(), total=5).expires_at is None
