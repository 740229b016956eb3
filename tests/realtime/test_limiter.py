"""The rate limiter's arithmetic, on a clock the test moves (no sleeping)."""

from __future__ import annotations

import asyncio

from airflow_llm_batch.realtime.limiter import Bucket, RateLimiter


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_bucket_holds_one_second_of_its_rate_and_refills_at_that_rate() -> None:
    bucket = Bucket.per_minute(120, now=0.0)  # 2 per second
    assert bucket.capacity == 2.0
    assert bucket.wait_for(1, 0.0) == 0.0
    bucket.take(2)
    assert bucket.wait_for(1, 0.0) == 0.5
    assert bucket.wait_for(1, 0.5) == 0.0


def test_a_request_larger_than_the_bucket_waits_for_a_full_bucket_not_forever() -> None:
    bucket = Bucket.per_minute(600, now=0.0)  # 10 tokens/s, capacity 10
    bucket.take(10)
    assert bucket.wait_for(5_000, 0.0) == 1.0


def test_requests_per_minute_spaces_calls_at_the_steady_rate() -> None:
    t = FakeTime()
    limiter = RateLimiter(requests_per_minute=60, clock=t.clock, sleep=t.sleep)

    async def go() -> None:
        for _ in range(5):
            await limiter.acquire(0)

    asyncio.run(go())
    assert t.now - 1000.0 == 4.0  # the first goes at once, then one per second


def test_tokens_per_minute_charges_each_request_its_tokens() -> None:
    t = FakeTime()
    limiter = RateLimiter(tokens_per_minute=6_000, clock=t.clock, sleep=t.sleep)  # 100 tokens/s

    async def go() -> None:
        for _ in range(3):
            await limiter.acquire(100)

    asyncio.run(go())
    assert t.now - 1000.0 == 2.0


def test_a_pause_holds_every_caller_until_it_ends() -> None:
    t = FakeTime()
    limiter = RateLimiter(clock=t.clock, sleep=t.sleep)
    limiter.pause_until(t.now + 7.5)
    assert limiter.delay_for(0, t.now) == 7.5
    asyncio.run(limiter.acquire(0))
    assert t.now == 1007.5
    assert limiter.delay_for(0, t.now) == 0.0


def test_no_limits_never_waits() -> None:
    t = FakeTime()
    limiter = RateLimiter(clock=t.clock, sleep=t.sleep)

    async def go() -> None:
        for _ in range(1000):
            await limiter.acquire(10_000)

    asyncio.run(go())
    assert t.slept == []
