"""The batch timeline every emulated provider follows: a pure function of the clock.

A batch is created, validates for ``validating_seconds``, answers its rows at ``rate`` per second,
finalizes for ``finalizing_seconds`` and ends. :meth:`Timeline.at` says where a batch stands at a
moment: its neutral :class:`Phase`, how many rows (in processing order) are answered, and when it
started, entered finalizing and ended. Each provider keeps only a table from :class:`Phase` to its
own status words; nothing here touches rows, files or statistics.

One rule for every provider:

* A batch whose input is invalid fails when validation ends.
* Expiry (``expires_at``, set when the emulator is configured with ``expire_after_seconds``) ends a
  batch that has rows left to answer at that moment, or that has not started by then: it keeps the
  rows answered before it. A batch whose rows are all answered is past expiry's reach (it completes
  after finalizing).
* The fault plan's expiry ends a batch once ``fault_expiry_rows`` rows are answered, unless the
  configured expiry comes first.
* A cancel asked before the end stops answering at once; the batch is ``CANCELLING`` for
  ``cancelling_seconds``, then ``CANCELLED`` with the rows answered at the cancel.

Example::

    timeline = Timeline(created=0.0, validating_seconds=1.0, rate=10.0, finalizing_seconds=1.0,
                        cancelling_seconds=0.5, total=20)
    timeline.at(0.5).phase      # Phase.VALIDATING
    timeline.at(1.5).answered   # 5
    timeline.at(3.5).phase      # Phase.FINALIZING (rows done at 3.0)
    timeline.at(4.0).ended_at   # 4.0 (Phase.COMPLETED)
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass

from .config import EmulatorConfig
from .faults import BatchFaults


class Phase(enum.Enum):
    """Where a batch stands, in neutral words; the last four are ends."""

    VALIDATING = "validating"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    CANCELLING = "cancelling"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    FAILED = "failed"

    #: members are singletons compared by identity: hash them by identity too, in C (Enum's own hash
    #: hashes the name in Python, a dozen times per batch poll); dicts keep their insertion order
    __hash__ = object.__hash__

    @property
    def ended(self) -> bool:
        """Whether the batch is over (no more rows, results published)."""
        return self in _ENDS


_ENDS = frozenset({Phase.COMPLETED, Phase.EXPIRED, Phase.CANCELLED, Phase.FAILED})


@dataclass(frozen=True)
class Snapshot:
    """A batch at one moment."""

    phase: Phase
    answered: int
    """Rows answered so far, in processing order."""
    started_at: float | None = None
    """When the rows began (None: not yet, or never)."""
    finalizing_at: float | None = None
    """When the last row was answered on the way to completion (None: not reached)."""
    ended_at: float | None = None


@dataclass(frozen=True)
class _End:
    phase: Phase
    at: float
    answered: int


@dataclass(frozen=True)
class Timeline:
    """How one batch moves with the clock (all times in Unix seconds)."""

    created: float
    validating_seconds: float
    rate: float
    """Rows answered per second once started."""
    finalizing_seconds: float
    cancelling_seconds: float
    total: int | None = None
    """Rows to answer; None while unknown (a Vertex job reads its input when validation ends)."""
    expires_at: float | None = None
    fault_expiry_rows: int | None = None
    """The fault plan expires the batch once this many rows are answered."""
    invalid: bool = False
    """The input is invalid: the batch fails when validation ends."""
    cancelled_at: float | None = None
    """When a cancel was asked."""

    @classmethod
    def for_batch(
        cls, created: float, config: EmulatorConfig, *, validates: bool = True, total: int | None = None,
        faults: BatchFaults | None = None, invalid: bool = False,
    ) -> Timeline:
        """The timeline of a batch created at ``created`` under ``config``.

        ``validates`` False starts the rows at creation (Anthropic has no validating status).
        """
        expire_after = config.expire_after_seconds
        timeline = cls(
            created=created,
            validating_seconds=config.validating_seconds if validates else 0.0,
            rate=config.requests_per_second,
            finalizing_seconds=config.finalizing_seconds,
            cancelling_seconds=config.cancelling_seconds,
            expires_at=None if expire_after is None else created + expire_after,
            invalid=invalid,
        )
        return timeline if total is None else timeline.with_rows(total, faults)

    def with_rows(self, total: int, faults: BatchFaults | None) -> Timeline:
        """This timeline once its ``total`` rows and the fault plan's effects are known."""
        if faults is None:
            return dataclasses.replace(self, total=total)
        return dataclasses.replace(
            self, total=total, rate=faults.pace(self.rate), fault_expiry_rows=faults.expire_after(total)
        )

    def failed(self) -> Timeline:
        """This timeline with an input found invalid (it fails when validation ends)."""
        return dataclasses.replace(self, invalid=True)

    def cancel(self, moment: float) -> Timeline:
        """This timeline with a cancel asked at ``moment`` (a later ask changes nothing)."""
        if self.cancelled_at is not None:
            return self
        return dataclasses.replace(self, cancelled_at=moment)

    @property
    def starts_at(self) -> float:
        """When validation ends and the rows begin."""
        return self.created + self.validating_seconds

    @property
    def rows_end(self) -> float:
        """When the last row is answered at full pace (infinite while the rows are unknown)."""
        if self.total is None:
            return math.inf
        return self.starts_at + self.total / self.rate

    def answered_at(self, index: int) -> float:
        """When row number ``index`` (in processing order) is answered."""
        return self.starts_at + (index + 1) / self.rate

    def answered_by(self, moment: float) -> int:
        """Rows answered by ``moment`` at the batch's pace, ignoring its end."""
        if self.total is None or moment <= self.starts_at:
            return 0
        done = self.total if moment >= self.rows_end else math.floor((moment - self.starts_at) * self.rate)
        done = min(self.total, done)
        return done if self.fault_expiry_rows is None else min(done, self.fault_expiry_rows)

    def _natural_end(self) -> _End:
        """How the batch ends when nobody cancels it."""
        start, expiry = self.starts_at, self.expires_at
        if expiry is not None and expiry <= start:
            return _End(Phase.EXPIRED, expiry, 0)
        if self.invalid:
            return _End(Phase.FAILED, start, 0)
        if self.total is None:
            return _End(Phase.IN_PROGRESS, math.inf, 0)
        planned = self.fault_expiry_rows
        if planned is not None:
            planned_at = start + planned / self.rate
            if expiry is None or planned_at <= expiry:
                return _End(Phase.EXPIRED, planned_at, planned)
        if expiry is not None and expiry < self.rows_end:
            return _End(Phase.EXPIRED, expiry, self.answered_by(expiry))
        return _End(Phase.COMPLETED, self.rows_end + self.finalizing_seconds, self.total)

    def _end(self) -> _End:
        """How the batch ends, the cancel included."""
        natural = self._natural_end()
        cancel = self.cancelled_at
        if cancel is None or cancel >= natural.at:
            return natural
        return _End(Phase.CANCELLED, cancel + self.cancelling_seconds, self.answered_by(cancel))

    def last_change(self, now: float) -> float:
        """When the batch last changed, seen at ``now``: its end, its cancel, its last answer, or
        its creation (an ``updateTime``)."""
        snapshot = self.at(now)
        if snapshot.ended_at is not None:
            return snapshot.ended_at
        if snapshot.phase is Phase.CANCELLING and self.cancelled_at is not None:
            return self.cancelled_at
        if snapshot.started_at is not None:
            return min(now, self.rows_end)
        return self.created

    def at(self, now: float) -> Snapshot:
        """Where the batch stands at ``now``."""
        end = self._end()
        stop = min(end.at, math.inf if self.cancelled_at is None else self.cancelled_at)
        start = self.starts_at
        started_at = start if now >= start and stop > start else None
        reaches_finalizing = end.phase is Phase.COMPLETED or (
            end.phase is Phase.CANCELLED and self._natural_end().phase is Phase.COMPLETED
        )
        finalizing_at = self.rows_end if reaches_finalizing and stop >= self.rows_end <= now else None
        if now >= end.at:
            return Snapshot(end.phase, end.answered, started_at, finalizing_at, end.at)
        if self.cancelled_at is not None and now >= self.cancelled_at:
            return Snapshot(Phase.CANCELLING, end.answered, started_at, finalizing_at)
        if started_at is None:
            return Snapshot(Phase.VALIDATING, 0)
        if finalizing_at is not None:
            return Snapshot(Phase.FINALIZING, self.answered_by(now), started_at, finalizing_at)
        return Snapshot(Phase.IN_PROGRESS, self.answered_by(now), started_at)


__all__ = ["Phase", "Snapshot", "Timeline"]
