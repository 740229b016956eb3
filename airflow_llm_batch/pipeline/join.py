"""Join a chunk's answers to its input rows by custom_id (never by position), and decide each row's fate.

:func:`classify_chunk` is the one place where a chunk's answers become rows. It is pure: it reads
the key entries and answers it is given and returns what to do, the engine (collect.py) and the
tests call it alike. For each row, in input order:

* a **final row** (succeeded, or failed with a reason) that goes into the chunk's results, or
* a **retry**: the row goes into the next attempt's chunk instead (policy.py decides which codes);
* and, for a succeeded row with a fingerprint when the cache writes, a **cache entry**.

Example::

    outcome = classify_chunk(read_key_index(keys), answers, OutputParser(), JoinContext(batch_id="b1"))
    write_results(path, outcome.final_records())   # streams; then:
    outcome.retry, outcome.to_cache, outcome.unmatched
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_llm_batch.pipeline.key_index import KeyEntry
from airflow_llm_batch.pipeline.parsing import OutputError, OutputParser
from airflow_llm_batch.pipeline.plain_record import PlainRecord, PlainUsage
from airflow_llm_batch.pipeline.policy import RetryPolicy
from airflow_llm_batch.pipeline.record_cost import RecordPricer
from airflow_llm_batch.pipeline.types import FinishReason, RawResult, ResultRow, RowStatus, Usage

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
    ``answered_by`` and ``pricer``: the path of the chunk and the run's pricer, when the results are
    written priced (collector.py): the plain records come priced from the join, as landing writes them.
    """

    batch_id: str | None
    attempt: int = 1
    no_answer: tuple[str, str] = MISSING_ANSWER
    adopted: bool = False
    retry: RetryRule | None = None
    cache_answers: bool = False
    answered_by: str = "batch"
    pricer: RecordPricer | None = None


class ChunkOutcome:
    """The verdicts of one chunk, folded as :meth:`final_rows` streams them (iterate it once).

    After the iteration: ``retry`` holds (position, entry) of the rows for the next attempt,
    ``to_cache`` the (fingerprint, answer) pairs to store, ``unmatched`` the number of answers whose
    custom_id is no row's of this chunk (they are never attached to a row).
    """

    def __init__(self, entries: Iterable[KeyEntry], answers: Mapping[str, RawResult], parser: OutputParser,
                 context: JoinContext) -> None:
        self._entries, self._answers, self._parser, self._context = entries, answers, parser, context
        self.retry: list[tuple[int, KeyEntry]] = []
        self.to_cache: list[tuple[str, RawResult]] = []
        self.unmatched = 0

    def final_records(self) -> Iterator[PlainRecord | dict[str, Any] | ResultRow]:
        """Each row's verdict in input order: its final record (laid out as ``ResultRow.to_dict`` writes
        it) is yielded, or it is kept for a retry; a succeeded answer with a fingerprint is kept for the
        cache when the context asks for it. No row object is built (one record per row: a plain record or
        a dict), except for a row whose carried columns share a name with a result field: it comes as its
        ResultRow, whose own status, error and usage are counted (``answered.write_results`` takes all three).

        Most rows are plain (no carried columns; a fingerprint or none) with a text answer that ended with
        ``stop``: their record is made here as a :class:`PlainRecord` (the fields ``record_and_error``
        gives, in its order, written by msgspec), with the context's ``answered_by`` and, when it has a
        pricer, its cost (what ``RecordPricer`` gives the record: a decoder's token counts are ints).
        Other records are dicts, not priced here."""
        answers, context = self._answers, self._context
        lookup, adopted, attempts, batch_id = answers.get, context.adopted, context.attempt, context.batch_id
        answered_by, pricer, realtime = context.answered_by, context.pricer, context.answered_by == "realtime"
        known_cost = pricer.memo(realtime).get if pricer is not None else None  # usage -> cost, once each
        rule, plain_text = context.retry, self._parser.mode == "text"
        cache_answers, to_cache = context.cache_answers, self.to_cache.append
        new_record, new_usage = PlainRecord, PlainUsage
        if rule is not None and rule.wants(None, unanswered=False, attempt=attempts, adopted=adopted):
            plain_text = False  # a succeeded row may be retried (never with today's policy): the general path
        matched = 0
        record: PlainRecord | dict[str, Any] | ResultRow | None
        for position, entry in enumerate(self._entries):
            answer = lookup(entry.answer_id if adopted else entry.custom_id)
            if answer is None:
                record = self._verdict(position, entry, None)
            elif plain_text and answer[8] is _STOP and answer[1] and answer[3] is None and entry[5] is None:
                matched += 1  # finish_reason, ok, embedding; carry (above)
                tokens_in, tokens_out, tokens_cached = answer[5]
                record = new_record(entry[1], _SUCCEEDED, answer[2], None, None,
                                    new_usage(tokens_in, tokens_out, tokens_cached, tokens_in + tokens_out),
                                    answer[4], batch_id, entry[0], attempts, False, answered_by)
                fingerprint = entry[3]
                if fingerprint is not None:  # the request cache is on: the row's extra, and its answer to store
                    record.fingerprint = fingerprint
                    if cache_answers and fingerprint:
                        to_cache((fingerprint, answer))
                if known_cost is not None:
                    cost = known_cost(answer[5], _UNPRICED)
                    record.cost_usd = pricer.cost(answer[5], realtime) if cost is _UNPRICED else cost  # type: ignore[union-attr]
            else:
                matched += 1
                record = self._verdict(position, entry, answer)
            if record is not None:
                yield record
        self.unmatched = len(answers) - matched

    def _verdict(self, position: int, entry: KeyEntry, answer: RawResult | None) -> dict[str, Any] | ResultRow | None:
        """Any row's final record (None: it is kept for a retry), with its cache entry noted."""
        context = self._context
        record: dict[str, Any] | ResultRow
        if entry.carry and not _ROW_FIELDS.isdisjoint(entry.carry):
            row = to_result_row(entry, answer, self._parser, context.batch_id, *context.no_answer)
            row.attempts = context.attempt
            record, error = row, row.error
        else:
            record, error = record_and_error(entry, answer, self._parser, context.batch_id, *context.no_answer,
                                             context.attempt)
        if answer is not None and context.cache_answers and entry.fingerprint and error is None:
            self.to_cache.append((entry.fingerprint, answer))
        rule = context.retry
        if rule is not None and rule.wants(error["code"] if error else None, unanswered=answer is None,
                                           attempt=context.attempt, adopted=context.adopted):
            self.retry.append((position, entry))
            return None
        return record

    def final_rows(self) -> Iterator[ResultRow]:
        """:meth:`final_records` as rows (for callers that read fields; writing takes the records)."""
        return (item if isinstance(item, ResultRow) else ResultRow.from_dict(_as_dict(item))
                for item in self.final_records())


def _as_dict(record: PlainRecord | dict[str, Any]) -> dict[str, Any]:
    return record.to_dict() if isinstance(record, PlainRecord) else record


def classify_chunk(entries: Iterable[KeyEntry], answers: Mapping[str, RawResult], parser: OutputParser,
                   context: JoinContext) -> ChunkOutcome:
    """Exactly one verdict per key entry, in input order (see the module docstring)."""
    return ChunkOutcome(entries, answers, parser, context)


def to_result_row(
    entry: KeyEntry,
    answer: RawResult | None,
    parser: OutputParser,
    batch_id: str | None,
    missing_code: str,
    missing_message: str,
) -> ResultRow:
    """The final row of ``entry`` given its answer (None: it has none). Run once per row: positional
    arguments, no intermediate dicts."""
    carry, fingerprint = entry.carry, entry.fingerprint
    extra = dict(carry) if carry else {}
    if fingerprint is not None:
        extra["fingerprint"] = fingerprint
    if answer is None:
        return ResultRow(entry.key, RowStatus.FAILED, None, None, {"code": missing_code, "message": missing_message},
                         batch_id=batch_id, custom_id=entry.custom_id, extra=extra)
    finish = FinishReason.parse(answer.finish_reason)
    if finish is not None and not finish.is_complete:
        extra["finish_reason"] = finish.value
    status, output, parsed, error = _fate(answer, parser, finish)
    return ResultRow(entry.key, status, output, parsed, error, answer.usage, answer.model, batch_id, entry.custom_id,
                     extra=extra)


def record_and_error(entry: KeyEntry, answer: RawResult | None, parser: OutputParser, batch_id: str | None,
                     missing_code: str, missing_message: str,
                     attempts: int = 1) -> tuple[dict[str, Any], dict[str, str] | None]:
    """(record, error): the record is what ``to_result_row(...).to_dict()`` gives (``attempts`` set),
    without the row (the same keys in the same order, the same values); error is the row's error (None:
    it succeeded), whatever a carried column of the same name put in the record. Run once per row."""
    record: dict[str, Any]
    error: dict[str, str] | None
    if answer is None:
        error = {"code": missing_code, "message": missing_message}
        record = {"key": entry.key, "status": _FAILED, "output": None, "parsed": None,
                  "error": error, "usage": dict(_ZERO_USAGE),
                  "model": None, "batch_id": batch_id, "custom_id": entry.custom_id, "attempts": attempts,
                  "cached": False, "answered_by": "batch"}
        finish = None
    else:
        finish = FinishReason.parse(answer.finish_reason)
        if answer.ok and answer.embedding is None and parser.mode == "text":  # most rows: nothing to parse
            status, output, parsed, error = _SUCCEEDED, answer.text, None, None
        else:
            fate, output, parsed, error = _fate(answer, parser, finish)
            status = fate.value
        tokens_in, tokens_out, tokens_cached = answer.tokens
        record = {"key": entry.key, "status": status, "output": output, "parsed": parsed, "error": error,
                  "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out,
                            "cached_input_tokens": tokens_cached, "total_tokens": tokens_in + tokens_out},
                  "model": answer.model, "batch_id": batch_id, "custom_id": entry.custom_id, "attempts": attempts,
                  "cached": False, "answered_by": "batch"}
    if entry.carry or entry.fingerprint is not None or (finish is not None and not finish.is_complete):
        record.update(_extra(entry, finish))  # as ``**extra`` in to_dict: a carried name may replace a field
    return record, error


def _extra(entry: KeyEntry, finish: FinishReason | None) -> dict[str, Any]:
    """A row's ``extra``: its carried columns, fingerprint and incomplete finish reason, in that order."""
    extra = dict(entry.carry) if entry.carry else {}
    if entry.fingerprint is not None:
        extra["fingerprint"] = entry.fingerprint
    if finish is not None and not finish.is_complete:
        extra["finish_reason"] = finish.value
    return extra


_SUCCEEDED, _FAILED = RowStatus.SUCCEEDED.value, RowStatus.FAILED.value
_UNPRICED: Any = object()  # a usage not in the pricer's memo yet (None is a cost: an unknown model's)
_STOP = FinishReason.STOP
_ZERO_USAGE = Usage().to_dict()
#: the fields of a result record (a carried column of the same name replaces its value in the record)
_ROW_FIELDS = frozenset(ResultRow("", RowStatus.FAILED).to_dict())


def _fate(answer: RawResult, parser: OutputParser,
          finish: FinishReason | None) -> tuple[RowStatus, str | None, Any, dict[str, str] | None]:
    """(status, output, parsed, error) of an answered row."""
    if not answer.ok:
        return RowStatus.FAILED, answer.text, None, {"code": answer.error_code or "error",
                                                     "message": answer.error_message or ""}
    if answer.embedding is not None:
        return RowStatus.SUCCEEDED, None, answer.embedding, None
    try:
        parsed = parser.parse(answer.text or "")
    except OutputError as exc:
        code = "truncated" if finish is FinishReason.LENGTH else "invalid_output"
        return RowStatus.FAILED, answer.text, None, {"code": code, "message": str(exc)}
    return RowStatus.SUCCEEDED, answer.text, parsed, None
