"""The guarded create kernel: one create, a look-up by tag after an unclear failure, never a guess.

The wire behaviour of each backend (its real SDK against the emulator's injected faults) is pinned
in the backend tests and tests/faults; these pin the decisions of the shared kernel itself."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import cast

import pytest

from airflow_llm_batch.backends.guarded_create import CreateAnswers, CreateGuard, Verdict, retry_reads
from airflow_llm_batch.exceptions import ProviderError


class StatusError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"status {status}")
        self.status = status


class Lost(Exception):
    """A connection lost mid-call (the create may have happened)."""


class NoConnect(Exception):
    """No connection was made (nothing was sent)."""


ANSWERS = CreateAnswers(
    service="Svc", api_error=StatusError, status_of=lambda exc: cast(StatusError, exc).status,
    describe=lambda exc: f"({cast(StatusError, exc).status}): no", refused_statuses=frozenset({429, 529}),
    refused_errors=(NoConnect,), unclear_errors=(Lost,),
)


def scripted(*outcomes: str | BaseException) -> tuple[Callable[[], Awaitable[str]], list[int]]:
    """A call answering each outcome in turn (an id, or an exception raised); counts its calls."""
    calls = [0]

    async def call() -> str:
        outcome = outcomes[calls[0]]
        calls[0] += 1
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return call, calls


def lookups(*answers: list[str] | BaseException) -> tuple[Callable[[], Awaitable[list[str]]], list[int]]:
    calls = [0]

    async def lookup() -> list[str]:
        answer = answers[calls[0]]
        calls[0] += 1
        if isinstance(answer, BaseException):
            raise answer
        return answer

    return lookup, calls


def guard(tries: int = 3, lookup_tries: int = 1) -> CreateGuard:
    return CreateGuard(ANSWERS, "the Svc endpoint", delays=(0.0,) * (tries - 1),
                       lookup_delays=(0.0,) * (lookup_tries - 1))


def test_the_table_classifies_statuses_and_transport_errors() -> None:
    assert [ANSWERS.verdict(StatusError(s)) for s in (429, 529, 500, 503, 400, 404)] == [
        Verdict.REFUSED, Verdict.REFUSED, Verdict.UNCLEAR, Verdict.UNCLEAR, Verdict.FATAL, Verdict.FATAL]
    assert ANSWERS.verdict(NoConnect()) is Verdict.REFUSED and ANSWERS.verdict(Lost()) is Verdict.UNCLEAR
    assert ANSWERS.verdict(KeyError()) is Verdict.FATAL


async def test_a_refused_create_is_tried_again_without_a_look_up() -> None:
    make, made = scripted(StatusError(429), NoConnect(), "b1")
    lookup, looked = lookups()
    assert await guard().create(make, lookup) == "b1"
    assert made == [3] and looked == [0]


async def test_an_unclear_create_that_landed_is_found_not_repeated() -> None:
    make, made = scripted(StatusError(502), "never")
    lookup, looked = lookups(["landed"])
    assert await guard().create(make, lookup) == "landed"
    assert made == [1] and looked == [1]


async def test_an_unclear_create_that_did_not_land_is_tried_again() -> None:
    make, made = scripted(Lost(), "b2")
    lookup, looked = lookups([])
    assert await guard().create(make, lookup) == "b2"
    assert made == [2] and looked == [1]


async def test_several_candidates_are_never_guessed_between() -> None:
    make, made = scripted(Lost(), "never")
    lookup, _ = lookups(["x", "y"])
    with pytest.raises(ProviderError, match=r"2 candidates .*refusing to guess"):
        await guard().create(make, lookup)
    assert made == [1]


async def test_a_fatal_answer_raises_at_once_with_its_status() -> None:
    make, made = scripted(StatusError(401), "never")
    lookup, looked = lookups()
    with pytest.raises(ProviderError, match=r"^Svc refused the batch \(401\): no$") as caught:
        await guard().create(make, lookup)
    assert caught.value.status_code == 401 and made == [1] and looked == [0]


async def test_running_out_of_tries_says_whether_a_batch_may_exist() -> None:
    make, _ = scripted(Lost(), Lost())
    lookup, _ = lookups([])
    with pytest.raises(ProviderError, match=r"cannot reach the Svc endpoint \(Lost: \). The batch may exist"):
        await guard(tries=2).create(make, lookup)
    make, _ = scripted(NoConnect())
    with pytest.raises(ProviderError, match=r"cannot reach the Svc endpoint \(NoConnect: \); nothing was submitted"):
        await guard(tries=1).create(make, lookup)
    make, _ = scripted(StatusError(503))
    with pytest.raises(ProviderError, match=r"Svc refused the batch \(503\)"):
        await guard(tries=1).create(make, lookup)


async def test_a_failing_look_up_is_retried_then_reported_never_a_blind_create() -> None:
    make, made = scripted(Lost(), "b3")
    lookup, looked = lookups(Lost(), [])
    assert await guard(lookup_tries=2).create(make, lookup) == "b3"
    assert looked == [2] and made == [2]
    make, made = scripted(Lost(), "never")
    lookup, _ = lookups(StatusError(500))
    with pytest.raises(ProviderError, match="checking whether it landed failed too"):
        await guard().create(make, lookup)
    assert made == [1]


async def test_errors_outside_the_table_propagate_untouched() -> None:
    make, _ = scripted(KeyError("k"))
    lookup, _ = lookups()
    with pytest.raises(KeyError):
        await guard().create(make, lookup)


async def test_retry_reads_repeats_transient_failures_and_raises_fatal_ones_as_they_are() -> None:
    read, calls = scripted(StatusError(429), Lost(), "ok")
    assert await retry_reads(read, ANSWERS, (0.0, 0.0)) == "ok" and calls == [3]
    read, calls = scripted(StatusError(404), "never")
    with pytest.raises(StatusError):
        await retry_reads(read, ANSWERS, (0.0, 0.0))
    assert calls == [1]
    read, calls = scripted(Lost(), Lost())
    with pytest.raises(Lost):
        await retry_reads(read, ANSWERS, (0.0,))
