"""Downloading ended batches' answers ahead of joining them: while chunk k is joined and written (in a
thread, see collector.py), chunk k+1's answers already stream in on the event loop.

At most ``ahead`` + 1 chunks' answers are held at once (the one being stored and the ones
downloading), so memory stays bounded by the chunk size, not by the number of chunks.

Example::

    async with AnswersAhead(backend, [(batch_id, True), ...], ahead=1) as answers:
        for _ in jobs:
            by_custom_id = await answers.next()
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType

from airflow_llm_batch.pipeline.backend import BatchBackend
from airflow_llm_batch.pipeline.types import RawResult

#: downloads running beside the chunk being joined and written (the join is CPU-bound and holds the
#: GIL: one download ahead hides the provider's serving and transfer time; more would only hold more
#: answers). 0: one chunk at a time, as before (one chunk's answers in memory instead of two)
COLLECT_AHEAD = 1


async def fetch_answers(backend: BatchBackend, batch_id: str, has_results: bool) -> dict[str, RawResult]:
    """Every answer of one ended batch, by custom_id ({} when the batch holds none)."""
    answers: dict[str, RawResult] = {}
    if has_results:
        async for answer in backend.results(batch_id):
            answers[answer.custom_id] = answer
    return answers


class AnswersAhead:
    """Hands out the answers of ``jobs`` ((batch_id, has_results) pairs) in order, downloading up to
    ``ahead`` beyond the one handed out last; pending downloads are cancelled when the block is left early."""

    def __init__(self, backend: BatchBackend, jobs: Sequence[tuple[str, bool]], *, ahead: int | None = None) -> None:
        ahead = COLLECT_AHEAD if ahead is None else ahead  # read per collect: a deployment may lower it
        if ahead < 0:
            raise ValueError(f"ahead must be 0 (one download at a time) or more, got {ahead}")
        self.backend, self.jobs, self.ahead = backend, list(jobs), ahead
        self._tasks: list[asyncio.Task[dict[str, RawResult]]] = []
        self._started = 0

    async def __aenter__(self) -> AnswersAhead:
        self._top_up(1)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def next(self) -> dict[str, RawResult]:
        """The next job's answers (in the order of ``jobs``); the next ``ahead`` downloads run meanwhile."""
        self._top_up(self.ahead + 1)  # this job's download and the next ``ahead``
        if not self._tasks:
            raise LookupError("every job's answers were handed out")
        task = self._tasks.pop(0)
        await asyncio.sleep(0)  # the new downloads send their first request before the caller goes on
        return await task

    def _top_up(self, window: int) -> None:
        while self._started < len(self.jobs) and len(self._tasks) < window:
            batch_id, has_results = self.jobs[self._started]
            self._tasks.append(asyncio.create_task(fetch_answers(self.backend, batch_id, has_results)))
            self._started += 1
