"""Join a chunk's answers to its input rows by custom_id (never by position), and decide each row's fate.

:func:`classify_chunk` is the one place where a chunk's answers become rows. It is pure: it reads
the key entries and answers it is given and returns what to do, the engine (collect.py) and the
tests call it alike. For each row, in input order:

* a **final row** (succeeded, or failed with a reason) that goes into the chunk's results, or
* a **retry**: the row goes into the next attempt's chunk instead (policy.py decides which codes);
* and, for a succeeded row with a fingerprint when the cache writes, a **cache entry**.

Example::

    outcome = classify_chunk(read_key_index(keys), answers, OutputParser(), JoinContext(batch_id="b1"))
    write_results(path, outcome.final_rows())   # streams; then:
    outcome.retry, outcome.to_cache, outcome.unmatched
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_llm_batch.pipeline.key_index import KeyEntry
from airflow_llm_batch.pipeline.parsing import OutputError, OutputParser
from airflow_llm_batch.pipeline.policy import RetryPolicy
from airflow_llm_batch.pipeline.types import FinishReason, RawResult, ResultRow, RowStatus

#: (code, message) of a row its batch did not answer, when nothing more precise is known
MISSING_ANSWER = ("missing_result", "the provider returned no answer for this row")


@dataclass(frozen=True)
class RetryRule:
    """Whether a failed row of a chunk gets another attempt.

    ``breaker``: the circuit breaker tripped, nothing more is sent. ``cancelled_by_us``: this task
    cancelled the batch itself (on_kill), so its unanswered rows are resent whatever the codes say.
    """

    policy: RetryPolicy
    breaker: bool = False
    cancelled_by_us: bool = False

    def wants(self, error_code: str | None, *, unanswered: bool, attempt: int, adopted: bool) -> bool:
        if self.breaker:
            return False
        if (self.cancelled_by_us and error_code == "batch_cancelled") or (adopted and unanswered):
            return attempt < self.policy.max_attempts
        return self.policy.should_retry(error_code, attempt)


@dataclass(frozen=True)
class JoinContext:
    """What the join needs to know about the chunk beyond its rows and answers.

    ``adopted``: the rows waited on an earlier run's batch and join on the custom_id they have there.
    ``retry`` None: every row is final. ``cache_answers``: report cache entries for succeeded rows.
    """

    batch_id: str | None
    attempt: int = 1
    no_answer: tuple[str, str] = MISSING_ANSWER
    adopted: bool = False
    retry: RetryRule | None = None
    cache_answers: bool = False


@dataclass(frozen=True)
class Verdict:
    """One row's fate: its result row, whether it is retried instead, the cache entry it gives."""

    position: int
    entry: KeyEntry
    row: ResultRow
    answered: bool
    retry: bool = False
    cache: tuple[str, RawResult] | None = None


class ChunkOutcome:
    """The verdicts of one chunk, folded as :meth:`final_rows` streams them (iterate it once).

    After the iteration: ``retry`` holds (position, entry) of the rows for the next attempt,
    ``to_cache`` the (fingerprint, answer) pairs to store, ``unmatched`` the number of answers whose
    custom_id is no row's of this chunk (they are never attached to a row).
    """

    def __init__(self, verdicts: Iterable[Verdict], answers: int) -> None:
        self._verdicts = verdicts
        self._answers = answers
        self.retry: list[tuple[int, KeyEntry]] = []
        self.to_cache: list[tuple[str, RawResult]] = []
        self.unmatched = 0

    def final_rows(self) -> Iterator[ResultRow]:
        matched = 0
        for verdict in self._verdicts:
            matched += verdict.answered
            if verdict.cache is not None:
                self.to_cache.append(verdict.cache)
            if verdict.retry:
                self.retry.append((verdict.position, verdict.entry))
            else:
                yield verdict.row
        self.unmatched = self._answers - matched


def classify_chunk(entries: Iterable[KeyEntry], answers: Mapping[str, RawResult], parser: OutputParser,
                   context: JoinContext) -> ChunkOutcome:
    """Exactly one verdict per key entry, in input order (see the module docstring)."""
    return ChunkOutcome(_verdicts(entries, answers, parser, context), len(answers))


def _verdicts(entries: Iterable[KeyEntry], answers: Mapping[str, RawResult], parser: OutputParser,
              context: JoinContext) -> Iterator[Verdict]:
    for position, entry in enumerate(entries):
        answer = answers.get(entry.answer_id if context.adopted else entry.custom_id)
        row = to_result_row(entry, answer, parser, context.batch_id, *context.no_answer)
        row.attempts = context.attempt
        code = row.error["code"] if row.error else None
        retry = context.retry is not None and context.retry.wants(
            code, unanswered=answer is None, attempt=context.attempt, adopted=context.adopted)
        keep = context.cache_answers and answer is not None and row.status == RowStatus.SUCCEEDED
        cache = (entry.fingerprint, answer) if keep and entry.fingerprint and answer is not None else None
        yield Verdict(position, entry, row, answer is not None, retry, cache)


def to_result_row(
    entry: KeyEntry,
    answer: RawResult | None,
    parser: OutputParser,
    batch_id: str | None,
    missing_code: str,
    missing_message: str,
) -> ResultRow:
    extra = dict(entry.carry or {})
    if entry.fingerprint is not None:
        extra["fingerprint"] = entry.fingerprint
    base: dict[str, Any] = {"key": entry.key, "custom_id": entry.custom_id, "batch_id": batch_id, "extra": extra}
    if answer is None:
        return ResultRow(status=RowStatus.FAILED, error={"code": missing_code, "message": missing_message}, **base)
    common = {"usage": answer.usage, "model": answer.model, **base}
    finish = FinishReason.parse(answer.finish_reason)
    if finish is not None and not finish.is_complete:
        extra["finish_reason"] = finish.value
    if not answer.ok:
        error = {"code": answer.error_code or "error", "message": answer.error_message or ""}
        return ResultRow(status=RowStatus.FAILED, output=answer.text, error=error, **common)
    if answer.embedding is not None:
        return ResultRow(status=RowStatus.SUCCEEDED, parsed=answer.embedding, **common)
    try:
        parsed = parser.parse(answer.text or "")
    except OutputError as exc:
        code = "truncated" if finish is FinishReason.LENGTH else "invalid_output"
        return ResultRow(status=RowStatus.FAILED, output=answer.text,
                         error={"code": code, "message": str(exc)}, **common)
    return ResultRow(status=RowStatus.SUCCEEDED, output=answer.text, parsed=parsed, **common)
