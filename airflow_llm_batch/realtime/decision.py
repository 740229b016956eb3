"""``mode="auto"``: batch or real-time, decided per run from volume, deadline, price and capability.

The rule (every number is a setting):

1. a server without a batch API (self-hosted, DeepSeek...) -> real-time;
2. nothing left to send after the request cache -> batch (no call is made either way);
3. fewer than ``min_batch_rows`` rows -> real-time (not worth a 24-hour window);
4. a deadline that a batch cannot be expected to meet (now + ``expected_batch_turnaround`` is past it)
   -> real-time (the reason says how long real-time should take, from ``realtime_latency_estimate``);
5. otherwise batch: it costs about half.

The decision carries its reason and the money at stake (batch vs real-time estimate), for the log, the
summary and ``dry_run``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from airflow_llm_batch.pipeline.cost import CostEstimate


class Mode(str, enum.Enum):
    BATCH = "batch"
    REALTIME = "realtime"
    AUTO = "auto"

    @classmethod
    def parse(cls, value: str | Mode) -> Mode:
        try:
            return cls(value.lower() if isinstance(value, str) else value)
        except ValueError:
            raise ValueError(f"mode={value!r}: use one of {[m.value for m in cls]}") from None


@dataclass(frozen=True)
class AutoRule:
    min_batch_rows: int = 100
    expected_batch_turnaround: timedelta = timedelta(hours=2)
    #: the real-time rate assumed for the rows left (``realtime_latency_estimate``): the reason of a
    #: deadline's pick says how long real-time should take and whether even that misses the deadline
    realtime_rows_per_second: float | None = None

    def realtime_seconds(self, rows: int) -> float | None:
        rate = self.realtime_rows_per_second
        return None if rate is None else rows / max(rate, 1e-9)


@dataclass(frozen=True)
class ModeDecision:
    mode: Mode  # batch or realtime, never auto
    reason: str
    rows: int
    batch_usd: float | None = None
    realtime_usd: float | None = None

    @property
    def extra_usd(self) -> float | None:
        """What real-time costs over batch for these rows (None when a price is unknown)."""
        if self.batch_usd is None or self.realtime_usd is None:
            return None
        return self.realtime_usd - self.batch_usd

    def describe(self) -> str:
        money = "" if self.extra_usd is None else (
            f"; batch ~${self.batch_usd:.4f} vs real-time ~${self.realtime_usd:.4f}")
        return f"mode={self.mode.value} for {self.rows:,} row(s): {self.reason}{money}"

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode.value, "reason": self.reason, "rows": self.rows, "batch_usd": self.batch_usd,
                "realtime_usd": self.realtime_usd, "extra_usd": self.extra_usd}


def decide_mode(mode: Mode, *, rows: int, has_batch_api: bool, estimate: CostEstimate | None = None,
                seconds_to_deadline: float | None = None, rule: AutoRule = AutoRule()) -> ModeDecision:
    """Which path sends ``rows`` (what is left after the cache) for a run asking for ``mode``."""
    money = {"batch_usd": estimate.batch_usd if estimate else None,
             "realtime_usd": estimate.realtime_usd if estimate else None}
    if mode is not Mode.AUTO:
        if mode is Mode.BATCH and not has_batch_api:
            raise ValueError("mode='batch' but this connection's server has no batch API; "
                             "use mode='realtime' or mode='auto'")
        return ModeDecision(mode, f"set by mode={mode.value!r}", rows, **money)
    mode, reason = _auto(rows, has_batch_api, seconds_to_deadline, rule)
    return ModeDecision(mode, reason, rows, **money)


def _auto(rows: int, has_batch_api: bool, seconds_to_deadline: float | None, rule: AutoRule) -> tuple[Mode, str]:
    if not has_batch_api:
        return Mode.REALTIME, "the server has no batch API"
    if rows == 0:
        return Mode.BATCH, "nothing left to send"
    if rows < rule.min_batch_rows:
        return Mode.REALTIME, f"fewer than {rule.min_batch_rows} rows (min_batch_rows)"
    turnaround = rule.expected_batch_turnaround.total_seconds()
    if seconds_to_deadline is not None and seconds_to_deadline < turnaround:
        return Mode.REALTIME, (f"the deadline is in {_hours(seconds_to_deadline)}, a batch is expected to take "
                               f"{_hours(turnaround)} (expected_batch_turnaround)"
                               + _realtime_needs(rule.realtime_seconds(rows), seconds_to_deadline))
    return Mode.BATCH, "batch costs about half and fits the deadline" if seconds_to_deadline else \
        "batch costs about half"


def _realtime_needs(seconds: float | None, seconds_to_deadline: float) -> str:
    """"; real-time should take ~12 min (realtime_latency_estimate)", and whether that misses the deadline."""
    if seconds is None:
        return ""
    late = " and may land after the deadline too" if seconds > seconds_to_deadline else ""
    return f"; real-time should take ~{_hours(seconds)} (realtime_latency_estimate){late}"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{max(seconds, 0) / 60:.0f} min"
