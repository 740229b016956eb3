"""The adaptive in-flight limit: 429s take slots away, answers give them back, waiters go in order."""

from __future__ import annotations

import asyncio

import pytest

from airflow_llm_batch.realtime.concurrency import AdaptiveLimit


def test_throttling_lowers_the_limit_and_answers_raise_it_back_to_the_ceiling() -> None:
    slots = AdaptiveLimit(ceiling=4)

    async def scenario() -> list[int]:
        seen = []
        for _ in range(3):
            await slots.enter()
            slots.leave(throttled=True)
            seen.append(slots.allowed)
        for _ in range(40):
            await slots.enter()
            slots.leave(throttled=False)
        seen.append(slots.allowed)
        return seen

    assert asyncio.run(scenario()) == [3, 2, 1, 4]
    assert slots.lowest == 1 and slots.in_flight == 0


def test_the_limit_never_goes_below_one() -> None:
    slots = AdaptiveLimit(ceiling=2)

    async def scenario() -> None:
        for _ in range(10):
            await slots.enter()
            slots.leave(throttled=True)

    asyncio.run(scenario())
    assert slots.allowed == 1 and slots.limit == 1.0


def test_a_fixed_refusal_share_settles_the_limit_near_one_minus_p_over_p() -> None:
    slots = AdaptiveLimit(ceiling=64)

    async def scenario() -> None:
        for i in range(5000):
            await slots.enter()
            slots.leave(throttled=i % 5 == 0)  # 20% refused

    asyncio.run(scenario())
    assert 3 <= slots.allowed <= 5


def test_callers_over_the_limit_wait_first_come_first_served() -> None:
    slots = AdaptiveLimit(ceiling=2)
    order: list[str] = []

    async def call(name: str, hold: asyncio.Event) -> None:
        await slots.enter()
        order.append(name)
        await hold.wait()
        slots.leave(throttled=False)

    async def scenario() -> int:
        holds = {name: asyncio.Event() for name in "abcde"}
        tasks = [asyncio.create_task(call(name, holds[name])) for name in "abcde"]
        await asyncio.sleep(0)
        peak = slots.in_flight
        for name in "abcde":
            holds[name].set()
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        return peak

    assert asyncio.run(scenario()) == 2
    assert order == list("abcde") and slots.in_flight == 0


def test_a_waiter_that_gives_up_does_not_keep_a_slot() -> None:
    slots = AdaptiveLimit(ceiling=1)

    async def scenario() -> None:
        await slots.enter()
        waiting = asyncio.create_task(slots.enter())
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        slots.leave(throttled=False)
        assert slots.in_flight == 0
        await asyncio.wait_for(slots.enter(), 1.0)  # the slot is free again
        slots.leave(throttled=False)

    asyncio.run(scenario())
    assert slots.in_flight == 0


def test_a_ceiling_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        AdaptiveLimit(ceiling=0)
