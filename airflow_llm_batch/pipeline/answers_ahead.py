"""Downloading ended batches' answers ahead of joining them: while chunk k is joined and written (in a
thread, see collector.py), chunk k+1's answers already stream in on the event loop.

Memory stays near one chunk's answers, not two: the join takes each answer out as its row is
joined (:class:`TakenOnce`: the answer is freed once its row is written), and the download ahead may
hold at most ``AHEAD_SLACK`` answers more than the join has taken from the chunk before it. The
download runs ahead at the join's pace (a provider's network is rarely faster than the join) and is
only held back when it would outrun it; once a chunk is stored, the next download has no bound.

Example::

    async with AnswersAhead(backend, [(batch_id, True), ...], ahead=1) as answers:
        for _ in jobs:
            by_custom_id = await answers.next()   # a TakenOnce: hand it to the join
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TypeVar, overload

from airflow_llm_batch.pipeline.backend import BatchBackend
from airflow_llm_batch.pipeline.types import RawResult

#: downloads running beside the chunk being joined and written (the join is CPU-bound and holds the
#: GIL: one download ahead hides the provider's serving and transfer time; more would only hold more
#: answers). 0: one chunk at a time, as before (one chunk's answers in memory instead of two)
COLLECT_AHEAD = 1

#: how many answers a download ahead may hold beyond those the join has taken from the chunk before
#: it (about 50 KiB each on the Python heap: 5,000 ~ 2.5 MiB): the room that lets the two overlap
AHEAD_SLACK = 5000
#: how often a held-back download looks again whether the join has moved on (seconds)
HELD_BACK_POLL = 0.02

T = TypeVar("T")


async def fetch_answers(backend: BatchBackend, batch_id: str, has_results: bool,
                        room: Callable[[], float] = lambda: math.inf) -> dict[str, RawResult]:
    """Every answer of one ended batch, by custom_id ({} when the batch holds none). Once ``room()``
    (how many answers it may hold now) is reached, checked after each list of answers the backend gives
    (one per downloaded piece: ~60 answers of 1 KiB), the download waits until the join has taken half
    of AHEAD_SLACK more (few, long pauses: every wake-up takes the GIL from the join's thread)."""
    answers: dict[str, RawResult] = {}
    if has_results:
        async for block in backend.result_blocks(batch_id):
            for answer in block:
                answers[answer.custom_id] = answer
            if len(answers) >= room():  # held back until the join has taken half the slack more
                while len(answers) + AHEAD_SLACK // 2 > room():  # noqa: ASYNC110 - the join runs in a thread
                    await asyncio.sleep(HELD_BACK_POLL)
    return answers


class AnswersAhead:
    """Hands out the answers of ``jobs`` ((batch_id, has_results) pairs) in order, as :class:`TakenOnce`
    views, downloading up to ``ahead`` beyond the one handed out last (each held back to the join's
    pace, see the module docstring); pending downloads are cancelled when the block is left early.
    Asking for the next job's answers says the join of the one before is done."""

    def __init__(self, backend: BatchBackend, jobs: Sequence[tuple[str, bool]], *, ahead: int | None = None) -> None:
        ahead = COLLECT_AHEAD if ahead is None else ahead  # read per collect: a deployment may lower it
        if ahead < 0:
            raise ValueError(f"ahead must be 0 (one download at a time) or more, got {ahead}")
        self.backend, self.jobs, self.ahead = backend, list(jobs), ahead
        self._tasks: list[asyncio.Task[dict[str, RawResult]]] = []
        self._started = 0
        self._views: list[TakenOnce | None] = []  # per job: its view once handed out, None before
        self._handed = 0  # jobs handed out so far

    async def __aenter__(self) -> AnswersAhead:
        self._top_up(1)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def next(self) -> TakenOnce:
        """The next job's answers (in the order of ``jobs``); the next ``ahead`` downloads run meanwhile."""
        if self._handed:
            self._finish(self._handed - 1)  # its chunk is stored: the download after it may fill up
        self._top_up(self.ahead + 1)  # this job's download and the next ``ahead``
        if not self._tasks:
            raise LookupError("every job's answers were handed out")
        task = self._tasks.pop(0)
        await asyncio.sleep(0)  # the new downloads send their first request before the caller goes on
        view = TakenOnce(await task)
        self._views[self._handed] = view
        self._handed += 1
        return view

    def _finish(self, job: int) -> None:
        view = self._views[job]
        if view is not None:
            view.release()

    def _room(self, job: int) -> Callable[[], float]:
        """How many answers job ``job``'s download may hold now: no bound for the first job or once
        the job before it is stored; else what the join took from that job, plus AHEAD_SLACK."""
        def room() -> float:
            view = self._views[job - 1] if job else None
            if job == 0 or (view is not None and view.finished):
                return math.inf
            return (view.taken if view is not None else 0) + AHEAD_SLACK

        return room

    def _top_up(self, window: int) -> None:
        while self._started < len(self.jobs) and len(self._tasks) < window:
            batch_id, has_results = self.jobs[self._started]
            self._views.append(None)
            room = self._room(self._started)
            self._tasks.append(asyncio.create_task(fetch_answers(self.backend, batch_id, has_results, room)))
            self._started += 1


class TakenOnce(Mapping[str, RawResult]):
    """One chunk's answers as the join reads them: ``get`` hands each answer out once and lets go of
    it, so the chunk's answers are freed row by row while the next chunk's download fills up.
    ``len`` stays the number of answers the batch returned (the join counts the answers no row took
    as ``len - matched``); iterating and ``[]`` see the answers not taken yet.

    Only for rows with distinct custom_ids (every chunk this package sends: a batch refuses a
    repeated custom_id); :meth:`unconsumed` gives the plain dict for the rows of an adopted chunk,
    which may share an earlier batch's answer.
    """

    def __init__(self, answers: dict[str, RawResult]) -> None:
        self._answers, self._count = answers, len(answers)
        self.taken = 0  # answers handed out by get (read by the download ahead, from the event loop)
        self.finished = False  # the chunk is stored: the download after it no longer waits on this one

    @overload
    def get(self, key: str, /) -> RawResult | None: ...
    @overload
    def get(self, key: str, default: RawResult | T, /) -> RawResult | T: ...

    def get(self, key: str, default: RawResult | T | None = None, /) -> RawResult | T | None:
        found = self._answers.pop(key, None)
        if found is None:
            return default
        self.taken += 1
        return found

    def release(self) -> None:
        """The chunk is stored: the download after it no longer waits on it, and the emptied dict (whose
        table keeps its full size however many answers were taken) goes."""
        self.finished, self._answers = True, {}

    def unconsumed(self) -> dict[str, RawResult]:
        """The answers not taken yet, as a plain dict (reading it takes nothing)."""
        return self._answers

    def __getitem__(self, key: str) -> RawResult:
        return self._answers[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._answers)

    def __len__(self) -> int:
        return self._count
