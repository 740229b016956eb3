"""When to stop waiting on a task's batches: one decision for the trigger's loop and the worker's.

Both loops poll the same batches the same way; what they do between polls (``await asyncio.sleep``
in the triggerer, ``time.sleep`` on the worker) is theirs, what each poll means is decided here:

* every watched batch ended, or with ``any_end`` the first one (the worker then sends chunks waiting
  for admission) -> ENDED;
* the task's deadline passed -> TIMEOUT;
* the deadline's real-time fallback is due (``switch_at``: the worker cancels the batches and sends the
  rest in real time) -> DEADLINE; the last wait before it is shortened to end at that moment;
* a poll failed with an answer polling again cannot change (auth, bad request), or more than
  ``max_consecutive_errors`` polls failed in a row -> ERROR;
* a batch open longer than ``warn_after`` (from ``opened_at``) is named once in ``Decision.stuck``
  (the loop logs a warning); with ``stop_on_stuck`` the wait ends there -> STUCK, so the worker can
  call the user's ``on_stuck_batch`` (the triggerer runs no user code), then wait again;
* else keep waiting: ``poll_interval``, or after a failed poll an exponential backoff capped at four
  poll intervals.

It also remembers when a poll first saw each batch running (``running_at``; the provider's own time
when its progress has one) and stamps it on that batch's progress as ``running_since``, so the event
carries it to the worker, which stores it on the chunk (:func:`note_running`). A batch seen only
before and after running (it ran between two polls) keeps no running time.

Example::

    wait = BatchWait(WaitRules(batch_ids=("b1", "b2"), poll_interval=30, deadline=time.time() + 3600))
    decision = wait.polled(progress, now=time.time())  # or wait.failed(exc) when the poll raised
    if decision.outcome is None:
        sleep(decision.delay)
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from airflow_llm_batch.pipeline.manifest import ChunkRecord, ChunkState
from airflow_llm_batch.pipeline.types import BatchProgress, BatchState

#: HTTP statuses that will not get better by polling again (a 404 on a batch itself is reported as the
#: batch gone, pipeline/vanished.py: the worker sends its rows again)
PERMANENT_STATUSES = frozenset({400, 401, 403, 404})
#: the longest wait after failed polls, in poll intervals
MAX_BACKOFF_INTERVALS = 4


class WaitOutcome(str, enum.Enum):
    """How a wait ended (the ``status`` of the trigger event: public, kept backward compatible)."""

    ENDED = "ended"  # every watched batch reached a terminal state (or the first, with any_end)
    TIMEOUT = "timeout"  # the task's timeout passed first
    ERROR = "error"  # polling failed permanently (auth, unknown batch) or too many transient errors
    STUCK = "stuck"  # a batch has been open longer than warn_after (only with stop_on_stuck)
    DEADLINE = "deadline"  # time to switch to real-time to land by the task's deadline


@dataclass(frozen=True)
class WaitRules:
    """What one wait watches and what it tolerates."""

    batch_ids: tuple[str, ...]
    poll_interval: float
    deadline: float | None = None  # epoch seconds
    any_end: bool = False
    max_consecutive_errors: int = 5
    warn_after: float | None = None  # seconds a batch may stay open before it is called stuck
    opened_at: Mapping[str, float] = field(default_factory=dict)  # batch id -> epoch seconds submitted
    warned: frozenset[str] = frozenset()  # batches already reported stuck (by an earlier wait)
    stop_on_stuck: bool = False
    switch_at: float | None = None  # epoch seconds: the deadline's real-time fallback is due


@dataclass(frozen=True)
class Decision:
    """``outcome`` None: keep waiting ``delay`` seconds, then poll again."""

    outcome: WaitOutcome | None
    delay: float = 0.0
    message: str | None = None
    stuck: tuple[str, ...] = ()  # batches newly open longer than warn_after: warn about them once


TIMEOUT_MESSAGE = "the task's timeout passed before the batches ended"
SWITCH_MESSAGE = "the deadline's real-time fallback is due: the open batches give way to real-time"


def after_poll(rules: WaitRules, ended: set[str], now: float, warned: frozenset[str] = frozenset()) -> Decision:
    """The decision once a poll succeeded and ``ended`` holds every watched batch seen ended
    (``warned``: batches already reported stuck, besides ``rules.warned``)."""
    watched = set(rules.batch_ids)
    if watched <= ended or (rules.any_end and watched & ended):
        return Decision(WaitOutcome.ENDED)
    if rules.deadline is not None and now >= rules.deadline:
        return Decision(WaitOutcome.TIMEOUT, message=TIMEOUT_MESSAGE)
    if rules.switch_at is not None and now >= rules.switch_at:
        return Decision(WaitOutcome.DEADLINE, message=SWITCH_MESSAGE)
    stuck = stuck_batches(rules, ended | warned | rules.warned, now)
    if stuck and rules.stop_on_stuck:
        return Decision(WaitOutcome.STUCK, message=stuck_message(rules, stuck, now), stuck=stuck)
    return Decision(None, until_next_poll(rules, now), stuck=stuck)


def until_next_poll(rules: WaitRules, now: float) -> float:
    """``poll_interval``, shortened so the poll after it comes when the real-time fallback is due."""
    if rules.switch_at is None:
        return rules.poll_interval
    return max(0.0, min(rules.poll_interval, rules.switch_at - now))


def stuck_batches(rules: WaitRules, skip: set[str] | frozenset[str], now: float) -> tuple[str, ...]:
    """Watched batches not in ``skip`` open for ``warn_after`` seconds or more."""
    if rules.warn_after is None:
        return ()
    return tuple(b for b in rules.batch_ids if b not in skip and b in rules.opened_at
                 and now - rules.opened_at[b] >= rules.warn_after)


def stuck_message(rules: WaitRules, stuck: Iterable[str], now: float) -> str:
    """One warning line: which batches, open how long, against which ``warn_after``."""
    ages = ", ".join(f"{b} ({(now - rules.opened_at[b]) / 3600:.1f} h)" for b in stuck)
    return (f"batch(es) open longer than warn_after={rules.warn_after:.0f}s: {ages}; still waiting "
            f"(check the provider's status page, or cancel with the task's timeout)")


def after_error(rules: WaitRules, errors: int, exc: BaseException) -> Decision:
    """The decision after ``errors`` polls in a row failed, the last with ``exc``."""
    status = getattr(exc, "status_code", None)
    if status in PERMANENT_STATUSES or errors > rules.max_consecutive_errors:
        return Decision(WaitOutcome.ERROR,
                        message=f"polling failed ({errors} in a row): {type(exc).__name__}: {exc}")
    delay = min(rules.poll_interval * MAX_BACKOFF_INTERVALS, rules.poll_interval * 2 ** (errors - 1))
    return Decision(None, delay)


def stuck_rules(stuck: dict[str, Any]) -> dict[str, Any]:
    """The stuck-batch fields of :class:`WaitRules` from the plain-JSON alert a trigger
    carries (``{"warn_after", "opened_at", "warned", "stop"}``; empty: no alert)."""
    if not stuck:
        return {}
    return {"warn_after": stuck.get("warn_after"), "opened_at": dict(stuck.get("opened_at") or {}),
            "warned": frozenset(stuck.get("warned") or ()), "stop_on_stuck": bool(stuck.get("stop"))}


def note_running(chunk: ChunkRecord, item: BatchProgress, now: float | None = None) -> bool:
    """Store on an open ``chunk`` when its batch was first seen running (``item.running_since``, or
    ``now`` if this poll sees it running); True when the chunk changed. Never moves a stored time."""
    if chunk.running_at is not None or chunk.state != ChunkState.SUBMITTED:
        return False
    if item.running_since is None and item.state != BatchState.RUNNING:
        return False
    chunk.running_at = item.running_since if item.running_since is not None else (now or time.time())
    return True


class BatchWait:
    """One wait in progress: the latest progress of each watched batch, which have ended, and how
    many polls failed in a row. Feed it each poll's outcome; it answers with a :class:`Decision`."""

    def __init__(self, rules: WaitRules) -> None:
        self.rules = rules
        self.errors = 0
        self.ended: set[str] = set()
        self.warned: set[str] = set(rules.warned)
        self._latest: dict[str, BatchProgress] = {}
        self.running_at: dict[str, float] = {}  # batch id -> epoch seconds first seen running

    def polled(self, progress: Iterable[BatchProgress], now: float) -> Decision:
        """A poll answered (batches not in it keep their earlier progress)."""
        self.errors = 0
        for item in progress:
            item = self._stamp_running(item, now)
            self._latest[item.batch_id] = item
            if item.state.is_terminal:
                self.ended.add(item.batch_id)
        decision = after_poll(self.rules, self.ended, now, frozenset(self.warned))
        self.warned.update(decision.stuck)
        return decision

    def _stamp_running(self, item: BatchProgress, now: float) -> BatchProgress:
        """``item`` with the time its batch was first seen running (remembered on first sight)."""
        if item.batch_id not in self.running_at and (item.state == BatchState.RUNNING or item.running_since):
            self.running_at[item.batch_id] = item.running_since or now
        since = self.running_at.get(item.batch_id)
        return item if since is None or item.running_since == since else replace(item, running_since=since)

    def failed(self, exc: BaseException) -> Decision:
        """A poll raised ``exc``."""
        self.errors += 1
        return after_error(self.rules, self.errors, exc)

    @property
    def progress(self) -> list[BatchProgress]:
        """The latest progress of each watched batch polled so far, in watching order."""
        return [self._latest[b] for b in self.rules.batch_ids if b in self._latest]

    @property
    def still_open(self) -> list[str]:
        return [b for b in self.rules.batch_ids if b not in self.ended]
