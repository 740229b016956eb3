"""Sends requests one by one on the provider's ordinary endpoint, as fast as the limits allow.

One async client, ``max_concurrency`` workers pulling from a bounded queue (memory stays flat for any
row count), client-side request/token rate limits, ``Retry-After`` honoured on 429 (every worker
pauses, and the calls in flight follow the server down: realtime/concurrency.py), exponential backoff
with jitter on 5xx and timeouts, and a circuit breaker: the first systemic answer (bad key, no quota)
stops every worker, because each further call would fail the same way. Every answer goes to the
``AnswerLog`` as it arrives; a resumed run skips what it holds.

Retry vocabulary is the batch path's (``pipeline/policy.py``): a code in ``retry_codes`` is tried again
here (refused calls are not billed), a code in ``systemic_codes`` trips the breaker, anything else is
the row's final answer.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from airflow_llm_batch.pipeline.policy import RetryPolicy
from airflow_llm_batch.pipeline.types import RawResult
from airflow_llm_batch.realtime.answer_log import AnswerLog
from airflow_llm_batch.realtime.concurrency import THROTTLE_CODES, AdaptiveLimit
from airflow_llm_batch.realtime.limiter import Clock, RateLimiter, Sleep
from airflow_llm_batch.realtime.progress import Progress

log = logging.getLogger(__name__)


class CallFailed(Exception):
    """A call that produced no answer. ``code`` uses the retry policy's words (``rate_limit_exceeded``,
    ``server_error``, ``timeout``, ``authentication_error``...); ``retry_after`` is the server's hint."""

    def __init__(self, code: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.retry_after = code, message, retry_after


@dataclass(frozen=True)
class RealtimeRequest:
    custom_id: str
    body: dict[str, Any]
    tokens: int = 0  # the estimate the token limiter charges


Send = Callable[[RealtimeRequest], Awaitable[RawResult]]


@dataclass(frozen=True)
class RunnerSettings:
    max_concurrency: int = 16
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_attempts: int = 6
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    progress_every: float = 30.0
    policy: RetryPolicy = field(default_factory=RetryPolicy)

    def backoff(self, attempt: int) -> float:
        """Seconds before attempt ``attempt + 1`` when the server gave no Retry-After (full jitter/2)."""
        ceiling = float(min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)))
        return ceiling * random.uniform(0.5, 1.0)


@dataclass
class RunnerReport:
    total: int = 0
    already_answered: int = 0
    calls: int = 0  # HTTP calls made, refused ones included
    answered: int = 0  # calls that returned a model answer: the ones the provider bills
    failed: int = 0  # rows whose final answer is a failure
    retries: int = 0
    unsent: int = 0  # rows left for a later try (the breaker tripped)
    breaker: CallFailed | None = None
    lowest_concurrency: int | None = None  # how far 429s took the calls in flight down (None: never)

    def to_dict(self) -> dict[str, Any]:
        breaker = {"code": self.breaker.code, "message": self.breaker.message} if self.breaker else None
        return {"total": self.total, "already_answered": self.already_answered, "calls": self.calls,
                "answered": self.answered, "failed": self.failed, "retries": self.retries,
                "unsent": self.unsent, "breaker": breaker, "lowest_concurrency": self.lowest_concurrency}


class RealtimeRunner:
    """Runs ``send`` over requests under the settings' limits, recording answers in ``answers``."""

    def __init__(self, send: Send, settings: RunnerSettings, answers: AnswerLog, *,
                 clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        self.send, self.settings, self.answers = send, settings, answers
        self.limiter = RateLimiter(settings.requests_per_minute, settings.tokens_per_minute,
                                   clock=clock, sleep=sleep)
        self.slots = AdaptiveLimit(settings.max_concurrency)
        self._clock, self._sleep = clock, sleep
        self.report = RunnerReport()

    def needs_sending(self, recorded: RawResult | None) -> bool:
        """A row is sent unless its answer is recorded; a recorded refusal (never billed) is sent again."""
        if recorded is None:
            return True
        return not recorded.ok and recorded.error_code in self.settings.policy.retry_codes

    async def run(self, requests: Iterable[RealtimeRequest], total: int) -> RunnerReport:
        recorded = self.answers.answered()
        self.report.total = total
        queue: asyncio.Queue[RealtimeRequest | None] = asyncio.Queue(maxsize=2 * self.settings.max_concurrency)
        progress = Progress(total, self.settings.progress_every, clock=self._clock)
        workers = [asyncio.create_task(self._worker(queue, progress)) for _ in range(self.settings.max_concurrency)]
        try:
            for request in requests:
                if self.needs_sending(recorded.get(request.custom_id)):
                    await queue.put(request)
                else:
                    self.report.already_answered += 1
                    progress.add(1)
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
            self.answers.close()
        progress.finish()
        self._report_throttling()
        return self.report

    def _report_throttling(self) -> None:
        if self.slots.lowest < self.slots.ceiling:
            self.report.lowest_concurrency = self.slots.lowest
            log.warning("The server throttled (429 / overloaded): calls in flight went down to %d of "
                        "max_concurrency=%d; lower max_concurrency or requests_per_minute to match it",
                        self.slots.lowest, self.slots.ceiling)

    async def _worker(self, queue: asyncio.Queue[RealtimeRequest | None], progress: Progress) -> None:
        while (request := await queue.get()) is not None:
            if self.report.breaker is not None:
                self.report.unsent += 1
                continue
            await self._send_one(request)
            progress.add(1)

    async def _send_one(self, request: RealtimeRequest) -> None:
        policy = self.settings.policy
        for attempt in range(1, self.settings.max_attempts + 1):
            await self.limiter.acquire(request.tokens)
            if self.report.breaker is not None:  # tripped while this one waited
                self.report.unsent += 1
                return
            self.report.calls += 1
            try:
                answer = await self._call_in_slot(request)
            except CallFailed as failure:
                if failure.code in policy.systemic_codes:
                    self._trip(failure)
                    self.report.unsent += 1
                    return
                if failure.code in policy.retry_codes and attempt < self.settings.max_attempts:
                    self.report.retries += 1
                    await self._wait_before_retry(failure, attempt)
                    continue
                answer = RawResult(request.custom_id, ok=False, error_code=failure.code,
                                   error_message=failure.message)
            else:
                self.report.answered += 1
            self._record(answer, attempt)
            return

    async def _call_in_slot(self, request: RealtimeRequest) -> RawResult:
        """``_call`` holding one of the adaptive slots; a throttling refusal lowers their number."""
        await self.slots.enter()
        throttled = False
        try:
            return await self._call(request)
        except CallFailed as failure:
            throttled = failure.code in THROTTLE_CODES
            raise
        finally:
            self.slots.leave(throttled=throttled)

    async def _call(self, request: RealtimeRequest) -> RawResult:
        """``send``, with anything but ``CallFailed`` turned into the row's final failure: a bug or a
        malformed line must fail its row, never kill a worker (the queue would then wait forever)."""
        try:
            return await self.send(request)
        except CallFailed:
            raise
        except Exception as exc:
            log.warning("Row %s could not be sent: %s", request.custom_id, type(exc).__name__, exc_info=True)
            raise CallFailed("client_error", f"the request could not be sent ({type(exc).__name__}); "
                                             f"see the task log") from exc

    def _record(self, answer: RawResult, attempts: int) -> None:
        self.answers.append(answer, attempts)
        if not answer.ok:
            self.report.failed += 1

    async def _wait_before_retry(self, failure: CallFailed, attempt: int) -> None:
        if failure.retry_after is not None:
            self.limiter.pause_until(self._clock() + failure.retry_after)  # every worker waits it out
            await self._sleep(failure.retry_after)
            return
        await self._sleep(self.settings.backoff(attempt))

    def _trip(self, failure: CallFailed) -> None:
        if self.report.breaker is None:
            self.report.breaker = failure
            log.error("Circuit breaker: %s (%s); no further request is sent in this try", failure.code,
                      failure.message)
