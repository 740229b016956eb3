"""``deadline=``: when a task's rows must have landed, and when a batch must give way to real-time.

A deadline is a ``timedelta`` counted from the run's start (its data interval end, or the logical date
when there is none), an absolute ``datetime``, or an ISO-8601 string (templated fields render to
strings). A naive datetime is read as UTC.

In batch mode the fallback starts when what is left could no longer be sent in real time before the
deadline: ``now >= deadline - (rows left / real-time rows per second) - safety margin``. Then the open
batches are cancelled, their answered rows are collected (not resent), and the rest goes real-time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

Deadline = timedelta | datetime | str

#: the default time one real-time answer is assumed to take (the operator's ``realtime_latency_estimate``;
#: conservative: most chat answers take 0.5-2 s); real-time then answers ``max_concurrency / this`` rows/s
TYPICAL_LATENCY_SECONDS = 2.0
#: the default time kept in hand after real-time's estimate (the operator's ``deadline_margin``), so the
#: task lands before the deadline, not at it
DEFAULT_MARGIN = timedelta(minutes=5)


def realtime_rate(max_concurrency: int, requests_per_minute: int | None = None,
                  latency_seconds: float = TYPICAL_LATENCY_SECONDS) -> float:
    """Rows per second real-time is assumed to answer: ``max_concurrency`` requests in flight, each
    taking ``latency_seconds``, capped by the client-side ``requests_per_minute``."""
    rate = max_concurrency / latency_seconds
    return rate if requests_per_minute is None else min(rate, requests_per_minute / 60.0)


def deadline_at(deadline: Deadline | None, run_start: datetime) -> datetime | None:
    """The absolute deadline (UTC) of a run that started at ``run_start``."""
    if deadline is None or deadline == "":
        return None
    if isinstance(deadline, timedelta):
        return _utc(run_start) + deadline
    if isinstance(deadline, str):
        try:
            deadline = datetime.fromisoformat(deadline.strip())
        except ValueError:
            raise ValueError(f"deadline={deadline!r}: give a timedelta, a datetime or an ISO-8601 time "
                             f"such as '2026-12-01T07:00:00+00:00'") from None
    return _utc(deadline)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


@dataclass(frozen=True)
class Fallback:
    """When a batch run must switch to real-time to land by ``at``."""

    at: datetime
    realtime_rows_per_second: float
    margin: timedelta = DEFAULT_MARGIN

    def realtime_needs(self, rows_left: int) -> timedelta:
        return timedelta(seconds=rows_left / max(self.realtime_rows_per_second, 1e-9))

    def switch_at(self, rows_left: int) -> datetime:
        return self.at - self.realtime_needs(rows_left) - self.margin

    def is_due(self, now: datetime, rows_left: int) -> bool:
        return rows_left > 0 and _utc(now) >= self.switch_at(rows_left)

    def describe(self, rows_left: int) -> str:
        return (f"deadline {self.at.isoformat()}: {rows_left:,} row(s) left need ~"
                f"{self.realtime_needs(rows_left).total_seconds():.0f} s in real time; switching at "
                f"{self.switch_at(rows_left).isoformat()}")
