"""Progress lines of all the triggers of a triggerer share one budget (a line costs ~5 ms of CPU)."""

from __future__ import annotations

import pytest

from airflow_llm_batch.triggers import batch
from airflow_llm_batch.triggers.batch import PROGRESS_LINES_PER_SECOND, LineBudget


def test_a_burst_of_first_polls_writes_only_the_budgeted_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(batch.time, "monotonic", lambda: clock[0])
    budget = LineBudget(PROGRESS_LINES_PER_SECOND)
    assert sum(budget.take() for _ in range(1000)) == int(PROGRESS_LINES_PER_SECOND)
    clock[0] += 1.0  # a second later: the next lines, never more than the burst
    assert sum(budget.take() for _ in range(1000)) == int(PROGRESS_LINES_PER_SECOND)
    clock[0] += 3600.0
    assert sum(budget.take() for _ in range(1000)) == int(PROGRESS_LINES_PER_SECOND)


def test_a_first_poll_where_nothing_happened_writes_no_line_and_a_change_does(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_llm_batch.pipeline.types import BatchProgress, BatchState
    from airflow_llm_batch.triggers.batch import ProgressLines

    monkeypatch.setattr(batch, "LINES", LineBudget(1000.0))
    lines = ProgressLines()
    waiting = [BatchProgress("b1", BatchState.PENDING, "validating", total=4)]
    assert lines.due(waiting) is None and lines.due(waiting) is None
    assert lines.due([BatchProgress("b1", BatchState.RUNNING, "in_progress", total=4, completed=2)]) == (
        "0/1 batches ended; 2/4 requests done, 0 failed [in_progress]")
    assert ProgressLines().due([BatchProgress("b2", BatchState.COMPLETED, "completed", total=1, completed=1)])
