"""Client-side rate limits for real-time calls: requests and tokens per minute, and a shared pause.

Two token buckets refill continuously at the per-minute rate. Each holds at most one second's worth
(so a run starts at the steady rate instead of bursting a whole minute into the provider's window),
but never less than one request or one request's tokens, so a single large request is not starved.
A 429 with ``Retry-After`` pauses every caller, not only the one that was refused: the provider's
window is shared by all of them.

The arithmetic is pure (``delay_for``), so it is tested without sleeping; ``acquire`` only sleeps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass
class Bucket:
    """One continuously refilled bucket: ``rate`` units per second, at most ``capacity`` stored."""

    rate: float
    capacity: float
    level: float
    at: float

    @classmethod
    def per_minute(cls, limit: int, now: float) -> Bucket:
        rate = limit / 60.0
        capacity = max(rate, 1.0)
        return cls(rate=rate, capacity=capacity, level=capacity, at=now)

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.at) * self.rate)
        self.at = max(self.at, now)

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` can be taken (an amount over capacity waits for a full bucket)."""
        self.refill(now)
        needed = min(amount, self.capacity)
        return 0.0 if self.level >= needed else (needed - self.level) / self.rate

    def take(self, amount: float) -> None:
        self.level -= amount  # may go below zero for a request larger than the bucket: later ones wait


class RateLimiter:
    """``requests_per_minute`` / ``tokens_per_minute`` (None = no limit) shared by every worker."""

    def __init__(self, requests_per_minute: int | None = None, tokens_per_minute: int | None = None, *,
                 clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        now = clock()
        self._requests = Bucket.per_minute(requests_per_minute, now) if requests_per_minute else None
        self._tokens = Bucket.per_minute(tokens_per_minute, now) if tokens_per_minute else None
        self._paused_until = 0.0
        self._clock, self._sleep = clock, sleep
        self._lock = asyncio.Lock()

    def pause_until(self, until: float) -> None:
        """Hold every caller until ``until`` (clock time), e.g. after a 429 with Retry-After."""
        self._paused_until = max(self._paused_until, until)

    def delay_for(self, tokens: int, now: float) -> float:
        """Seconds to wait before a request of ``tokens`` may go; 0 means now (nothing is taken)."""
        delay = max(0.0, self._paused_until - now)
        if self._requests is not None:
            delay = max(delay, self._requests.wait_for(1, now))
        if self._tokens is not None:
            delay = max(delay, self._tokens.wait_for(tokens, now))
        return delay

    async def acquire(self, tokens: int) -> None:
        """Wait until the request may go, then take its share (callers go in arrival order)."""
        async with self._lock:
            while (delay := self.delay_for(tokens, self._clock())) > 0:
                await self._sleep(delay)
            if self._requests is not None:
                self._requests.take(1)
            if self._tokens is not None:
                self._tokens.take(tokens)
