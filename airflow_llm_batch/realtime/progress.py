"""Progress lines for long real-time runs: rows done of total, rate and time left, every N seconds."""

from __future__ import annotations

import logging
import time

from airflow_llm_batch.realtime.limiter import Clock

log = logging.getLogger(__name__)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class Progress:
    """Counts finished rows and logs ``done / total, rate, ETA`` at most every ``every`` seconds."""

    def __init__(self, total: int, every: float, *, clock: Clock = time.monotonic) -> None:
        self.total, self.every, self._clock = total, every, clock
        self.done = 0
        self.started = self._last = clock()

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        left = self.total - self.done
        eta = _duration(left / rate) if rate > 0 else "unknown"
        share = 100.0 * self.done / self.total if self.total else 100.0
        return f"Real-time: {self.done:,} / {self.total:,} rows ({share:.1f}%), {rate:,.1f} rows/s, ETA {eta}"

    def add(self, rows: int) -> None:
        self.done += rows
        now = self._clock()
        if now - self._last >= self.every:
            self._last = now
            log.info("%s", self.line(now))

    def finish(self) -> None:
        log.info("%s (done in %s)", self.line(self._clock()), _duration(self._clock() - self.started))
