"""How many real-time calls may be in flight: ``max_concurrency`` at most, fewer while the server throttles.

A server that answers 429 ("too many requests", "overloaded") is saying the client sends more than it
carries. Retrying at the same concurrency keeps the excess calls bouncing: with 12 workers against a
server that holds 8, four calls are refused at any moment, and the call that was just refused is the
last to come back after its pause, so the same row can lose every race until its attempts run out.

The limit therefore follows the server, the way TCP's congestion window does: each throttling answer
takes one off the limit (never below 1), each answered call gives back ``1 / limit`` (about one per
round of calls), up to the ceiling. A server that keeps refusing a fixed share ``p`` of calls settles
the limit near ``(1 - p) / p``; one that never throttles leaves it at the ceiling, where taking a slot
costs a comparison and an increment.

Example::

    slots = AdaptiveLimit(ceiling=16)
    await slots.enter()
    try:
        answer = await send(request)
    finally:
        slots.leave(throttled=False)
"""

from __future__ import annotations

import asyncio
from collections import deque

#: failure codes (retry policy words) that mean "send less", as opposed to a fault of one call
THROTTLE_CODES = frozenset({"rate_limit_exceeded", "rate_limit_error", "429", "overloaded_error"})


class AdaptiveLimit:
    """Slots for calls in flight: ``enter`` waits (first come, first served) while all are taken."""

    def __init__(self, ceiling: int) -> None:
        if ceiling < 1:
            raise ValueError(f"ceiling must be at least 1, not {ceiling}")
        self.ceiling = ceiling
        self.limit = float(ceiling)
        self.in_flight = 0
        #: the lowest the limit went (an integer), for the run's report
        self.lowest = ceiling
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def allowed(self) -> int:
        return max(1, int(self.limit))

    async def enter(self) -> None:
        if self.in_flight < self.allowed and not self._waiters:
            self.in_flight += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # the slot is handed over by leave(): in_flight already counts this call
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release_slot()  # handed over just as the caller gave up: pass it on
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def leave(self, *, throttled: bool) -> None:
        """One call ended; ``throttled``: the server refused it for load (see :data:`THROTTLE_CODES`)."""
        if throttled:
            self.limit = max(1.0, self.limit - 1.0)
            self.lowest = min(self.lowest, self.allowed)
        else:
            self.limit = min(float(self.ceiling), self.limit + 1.0 / self.limit)
        self._release_slot()

    def _release_slot(self) -> None:
        self.in_flight -= 1
        while self._waiters and self.in_flight < self.allowed:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)
