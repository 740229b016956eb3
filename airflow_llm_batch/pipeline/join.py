"""Join a chunk's answers to its input rows by custom_id (never by position)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from typing import Any

from airflow_llm_batch.pipeline.parsing import OutputError, OutputParser
from airflow_llm_batch.pipeline.storage import StoragePath
from airflow_llm_batch.pipeline.types import FinishReason, RawResult, ResultRow, RowStatus

log = logging.getLogger(__name__)


def read_key_index(path: StoragePath) -> Iterator[dict[str, Any]]:
    with path.open("rb") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def join_results(
    keys: Iterable[dict[str, Any]],
    answers: Iterable[RawResult],
    parser: OutputParser,
    *,
    batch_id: str | None,
    attempt: int = 1,
    missing_code: str = "missing_result",
    missing_message: str = "the provider returned no answer for this row",
) -> Iterator[ResultRow]:
    """Yield exactly one ResultRow per key entry, in input order.

    Answers are held in a dict for one chunk at most (bounded by the provider's batch size).
    Answers whose custom_id is not in the chunk are counted and logged, never attached to a row.
    """
    by_id: dict[str, RawResult] = {a.custom_id: a for a in answers}
    for entry in keys:
        row = to_result_row(entry, by_id.pop(entry["c"], None), parser, batch_id, missing_code, missing_message)
        row.attempts = attempt
        yield row
    if by_id:
        log.warning("Ignored %d answer(s) with custom_ids that are not in this chunk", len(by_id))


def to_result_row(
    entry: dict[str, Any],
    answer: RawResult | None,
    parser: OutputParser,
    batch_id: str | None,
    missing_code: str,
    missing_message: str,
) -> ResultRow:
    extra = dict(entry.get("carry") or {})
    if "f" in entry:
        extra["fingerprint"] = entry["f"]
    base = {"key": entry["k"], "custom_id": entry["c"], "batch_id": batch_id, "extra": extra}
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
