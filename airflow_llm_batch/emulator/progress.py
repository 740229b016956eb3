"""The rows a batch has answered so far, and their delivery when it ends: shared by every provider.

:func:`answer_rows` answers rows in processing order up to what the :mod:`.lifecycle` timeline
says, applying the fault plan's row errors; the provider says only how to name a row, answer it
and fail it. :func:`deliver` publishes answers: the fault plan may break some output lines, and
each successful answer that reaches the client counts in ``succeeded_by_custom_id`` (the
"nothing paid twice" counter).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

from .faults import BatchFaults, FaultPlanState, break_line
from .lifecycle import Snapshot, Timeline
from .state import ProviderStats, gc_paused

Row = TypeVar("Row")
Item = TypeVar("Item")


class Answer(NamedTuple, Generic[Item]):
    """One answered row: whether it succeeded, its custom id (None: unnamed) and its output.

    A tuple: tens of thousands are made per batch, and a tuple is the cheapest record to build.
    """

    ok: bool
    label: str | None
    item: Item


@dataclass
class Progress(Generic[Item]):
    """The answers of one batch, in processing order, and their counts."""

    answers: list[Answer[Item]] = field(default_factory=list)
    processed: int = 0
    succeeded: int = 0
    failed: int = 0


@dataclass(frozen=True)
class RowAnswerer(Generic[Row, Item]):
    """How a provider answers one row.

    ``label`` names a row for the fault plan (None: the plan cannot pick it); ``answer`` returns
    (succeeded, output) for row number ``index``; ``inject`` returns the output of a row the fault
    plan fails with an error code.
    """

    label: Callable[[Row], str | None]
    answer: Callable[[Row, int], tuple[bool, Item]]
    inject: Callable[[Row, int, str], Item]


def answer_rows(
    progress: Progress[Item],
    rows: Sequence[Row],
    upto: int,
    answerer: RowAnswerer[Row, Item],
    faults: BatchFaults | None,
    stats: ProviderStats,
) -> None:
    """Answer ``rows[progress.processed:upto]``; a row the fault plan picks fails with its code."""
    if upto <= progress.processed:
        return
    with gc_paused():
        for index in range(progress.processed, upto):
            row = rows[index]
            label = answerer.label(row)
            code = faults.row_error(label) if faults is not None and label else None
            if code is None:
                ok, item = answerer.answer(row, index)
            else:
                ok, item = False, answerer.inject(row, index, code)
                stats.row_errors_injected += 1
            progress.answers.append(Answer(ok, label, item))
            if ok:
                progress.succeeded += 1
            else:
                progress.failed += 1
    progress.processed = upto


@dataclass
class BatchRun(Generic[Row, Item]):
    """A batch's timeline, rows and answers: what every provider's batch object holds.

    Example::

        run = BatchRun(Timeline.for_batch(now, config, total=len(rows), faults=faults), rows, faults)
        if run.advance(clock(), answerer, stats):  # True once, when the batch ends
            publish(run.progress.answers)
    """

    timeline: Timeline
    rows: list[Row]
    faults: BatchFaults | None = None
    progress: Progress[Item] = field(default_factory=Progress)
    snapshot: Snapshot | None = None

    @property
    def now(self) -> Snapshot:
        """Where the batch stood when it was last brought up to date."""
        return self.snapshot if self.snapshot is not None else self.timeline.at(self.timeline.created)

    @property
    def ended(self) -> bool:
        return self.snapshot is not None and self.snapshot.phase.ended

    def advance(self, now: float, answerer: RowAnswerer[Row, Item], stats: ProviderStats) -> bool:
        """Bring the batch to ``now``, answering the rows due; True when it has just ended."""
        if self.ended:
            return False
        self.snapshot = self.timeline.at(now)
        answer_rows(self.progress, self.rows, self.snapshot.answered, answerer, self.faults, stats)
        return self.snapshot.phase.ended

    def unanswered(self) -> list[Row]:
        """The rows never answered (in processing order)."""
        return self.rows[self.progress.processed :]

    def release(self) -> None:
        """Drop rows and answers once the results are published (the counts stay)."""
        self.rows, self.progress.answers = [], []


@dataclass(frozen=True)
class Delivery:
    """Where a provider's answers go: its name, the fault plan in force and its statistics."""

    provider: str
    plan: FaultPlanState
    stats: ProviderStats

    def deliver(
        self,
        answers: Iterable[Answer[Item]],
        faults: BatchFaults | None,
        breaker: Callable[[Item], Item] | None = None,
    ) -> list[Item]:
        """The published items; ``breaker`` writes the lines the fault plan picks broken.

        A broken line is not a delivered answer; every other successful named answer counts once
        in ``succeeded_by_custom_id``.
        """
        items: list[Item] = []
        delivered: list[str] = []
        for answer in answers:
            item, label = answer.item, answer.label
            if breaker is not None and self._breaks(faults, label):
                item = breaker(item)
                self.stats.malformed_lines += 1
            elif answer.ok and label is not None:
                delivered.append(label)
            items.append(item)
        self.stats.succeeded_by_custom_id.update(delivered)
        return items

    def deliver_lines(self, answers: Iterable[Answer[bytes]], faults: BatchFaults | None) -> list[bytes]:
        """:meth:`deliver` for JSONL lines (the fault plan may break them)."""
        return self.deliver(answers, faults, break_line)

    def _breaks(self, faults: BatchFaults | None, label: str | None) -> bool:
        if faults is None or label is None:
            return False
        return self.plan.breaks_line(self.provider, label, faults.plan)


__all__ = ["Answer", "BatchRun", "Delivery", "Progress", "RowAnswerer", "answer_rows"]
