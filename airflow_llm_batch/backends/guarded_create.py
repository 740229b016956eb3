"""Creating a batch without paying twice, for every backend: one home for the guarded create.

A create is never retried blindly (an SDK retry after a lost answer could create a second batch,
paid twice). Each failure is read through the backend's :class:`CreateAnswers` table:

* **refused**: the service proved nothing was created (429, overloaded, no connection made at
  all): wait, then try again;
* **unclear**: the batch may exist (5xx, timeout, connection lost mid-call): wait, look the batch up
  by its tag; use it if exactly one appeared, refuse to guess if several did, else try again;
* **fatal**: a retry cannot help (4xx): raise at once.

When the tries run out the last failure is raised, saying whether a batch may exist. Reads
(polls, list calls) go through :func:`retry_reads`, which tries an idempotent call again after a
refused or unclear failure read from the same table.

Example::

    answers = CreateAnswers(service="OpenAI", api_error=openai.APIStatusError, status_of=...,
                            refused_statuses=frozenset({429}), unclear_errors=(openai.APIConnectionError,))
    guard = CreateGuard(answers, where="the OpenAI endpoint https://api.openai.com/v1", delays=(1.0, 2.0))
    batch_id = await guard.create(lambda: make_batch(), lambda: backend.find(tag, started - 60))
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from airflow_llm_batch.exceptions import ProviderError

log = logging.getLogger(__name__)
T = TypeVar("T")

#: every 5xx: the service may have acted before it failed
SERVER_ERRORS = frozenset(range(500, 600))


class Verdict(enum.Enum):
    """What one failed call proves about what the service did."""

    REFUSED = "refused"
    UNCLEAR = "unclear"
    FATAL = "fatal"


@dataclass(frozen=True)
class CreateAnswers:
    """One backend's table of failures: which errors carry an HTTP status, and what each proves.

    ``refused_errors`` are checked before ``unclear_errors`` (a failed connect is a subclass of the
    transport errors in aiohttp and httpx). Anything not listed propagates untouched.
    """

    service: str
    """How messages name the service (``"OpenAI"``)."""
    api_error: type[BaseException]
    status_of: Callable[[BaseException], int]
    describe: Callable[[BaseException], str]
    """The parenthesised status and message of an API error (``"(400): bad request"``)."""
    refused_statuses: frozenset[int] = frozenset({429})
    unclear_statuses: frozenset[int] = SERVER_ERRORS
    refused_errors: tuple[type[BaseException], ...] = ()
    unclear_errors: tuple[type[BaseException], ...] = ()
    batch_word: str = "batch"

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        return (self.api_error, *self.refused_errors, *self.unclear_errors)

    def verdict(self, exc: BaseException) -> Verdict:
        if isinstance(exc, self.api_error):
            status = self.status_of(exc)
            if status in self.refused_statuses:
                return Verdict.REFUSED
            return Verdict.UNCLEAR if status in self.unclear_statuses else Verdict.FATAL
        if isinstance(exc, self.refused_errors):
            return Verdict.REFUSED
        return Verdict.UNCLEAR if isinstance(exc, self.unclear_errors) else Verdict.FATAL

    def reason(self, exc: BaseException) -> str:
        return f"HTTP {self.status_of(exc)}" if isinstance(exc, self.api_error) else type(exc).__name__

    def detail(self, exc: BaseException) -> str:
        """``(400): bad request`` for an API error, ``(ConnectError: ...)`` for a transport error."""
        return self.describe(exc) if isinstance(exc, self.api_error) else f"({type(exc).__name__}: {exc})"

    def failure(self, exc: BaseException, where: str) -> ProviderError:
        """The error that ends a create: the service's refusal, or the endpoint that could not be reached."""
        if isinstance(exc, self.api_error):
            status = self.status_of(exc)
            return ProviderError(f"{self.service} refused the {self.batch_word} {self.describe(exc)}",
                                 status_code=status)
        if self.verdict(exc) is Verdict.REFUSED:
            return ProviderError(f"cannot reach {where} {self.detail(exc)}; nothing was submitted")
        return ProviderError(f"cannot reach {where} {self.detail(exc)}. The {self.batch_word} may "
                             f"exist: a retry of the task re-attaches to it by its tag")


Attempt = str | tuple[Verdict, BaseException]


@dataclass(frozen=True)
class CreateGuard:
    """A backend's create policy: its table, the endpoint it names in errors, and its waits.

    :param delays: seconds to wait before each new try of a create (their count + 1 = the tries)
    :param lookup_delays: seconds to wait before each new try of a look-up that failed transiently
    """

    answers: CreateAnswers
    where: str
    delays: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
    lookup_delays: tuple[float, ...] = ()

    async def create(self, make: Callable[[], Awaitable[str]], lookup: Callable[[], Awaitable[list[str]]]) -> str:
        """The id ``make`` returns, or the one ``lookup`` finds after an unclear failure."""
        for delay in self.delays:
            outcome = await self._attempt(make)
            if isinstance(outcome, str):
                return outcome
            verdict, exc = outcome
            await asyncio.sleep(delay)
            landed = await self._landed(lookup) if verdict is Verdict.UNCLEAR else None
            if landed:
                log.info("Create failed (%s) but %s %s carries the tag: using it", self.answers.reason(exc),
                         self.answers.batch_word, landed)
                return landed
            log.warning("Create failed (%s, %s); no %s was created, trying again", self.answers.reason(exc),
                        verdict.value, self.answers.batch_word)
        outcome = await self._attempt(make)
        if isinstance(outcome, str):
            return outcome
        raise self.answers.failure(outcome[1], self.where) from outcome[1]

    async def _attempt(self, make: Callable[[], Awaitable[str]]) -> Attempt:
        try:
            return await make()
        except self.answers.errors as exc:
            verdict = self.answers.verdict(exc)
            if verdict is Verdict.FATAL:
                raise self.answers.failure(exc, self.where) from exc
            return verdict, exc

    async def _landed(self, lookup: Callable[[], Awaitable[list[str]]]) -> str | None:
        """The one batch an unclear create made, if it appeared; never a guess among several."""
        try:
            found = await retry_reads(lookup, self.answers, self.lookup_delays)
        except self.answers.errors as exc:
            raise ProviderError(f"a {self.answers.batch_word} create failed and checking whether it landed failed "
                                f"too ({self.answers.reason(exc)}); a retry of the task re-attaches to it if it "
                                f"exists") from exc
        if len(found) > 1:
            raise ProviderError(f"a {self.answers.batch_word} create failed and {len(found)} candidates appeared "
                                f"since ({found}); refusing to guess or to create another")
        return found[0] if found else None


async def retry_reads(call: Callable[[], Awaitable[T]], answers: CreateAnswers, delays: tuple[float, ...]) -> T:
    """An idempotent call, tried again after each refused or unclear failure (one wait per delay)."""
    for delay in delays:
        try:
            return await call()
        except answers.errors as exc:
            if answers.verdict(exc) is Verdict.FATAL:
                raise
            log.info("Read failed (%s); trying again in %.1f s", answers.reason(exc), delay)
        await asyncio.sleep(delay)
    return await call()
