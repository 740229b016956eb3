"""Answers join to rows by custom_id, whatever their order; parsing failures stay per row."""

from __future__ import annotations

from typing import Any, cast

from pydantic import BaseModel, Field

from airflow_llm_batch.pipeline.join import MISSING_ANSWER, JoinContext, classify_chunk
from airflow_llm_batch.pipeline.key_index import KeyEntry
from airflow_llm_batch.pipeline.parsing import OutputParser
from airflow_llm_batch.pipeline.types import FinishReason, RawResult, ResultRow, RowStatus, Usage


class Label(BaseModel):
    name: str
    score: int = Field(ge=0, le=5)


def keys(n: int) -> list[KeyEntry]:
    return [KeyEntry(f"c{i}", f"k{i}", i) for i in range(n)]


def join_results(entries: list[KeyEntry], answers: list[RawResult], parser: OutputParser, *, batch_id: str,
                 no_answer: tuple[str, str] = MISSING_ANSWER) -> list[ResultRow]:
    """The final rows of a chunk whose rows are never retried."""
    outcome = classify_chunk(entries, {a.custom_id: a for a in answers}, parser,
                             JoinContext(batch_id, no_answer=no_answer))
    return list(outcome.final_rows())


def test_out_of_order_answers_join_by_custom_id() -> None:
    answers = [RawResult(f"c{i}", ok=True, text=f"answer {i}", usage=Usage(2, 3)) for i in reversed(range(5))]
    rows = join_results(keys(5), answers, OutputParser(), batch_id="b1")
    assert [r.key for r in rows] == [f"k{i}" for i in range(5)]
    assert [r.output for r in rows] == [f"answer {i}" for i in range(5)]
    assert all(r.status == RowStatus.SUCCEEDED and r.batch_id == "b1" for r in rows)


def test_missing_and_failed_answers_become_failed_rows() -> None:
    answers = [RawResult("c0", ok=False, error_code="rate_limit_exceeded", error_message="slow down"),
               RawResult("zzz", ok=True, text="stray")]
    rows = join_results(keys(2), answers, OutputParser(), batch_id="b", no_answer=("batch_expired", "expired"))
    assert rows[0].error == {"code": "rate_limit_exceeded", "message": "slow down"}
    assert rows[1].status == RowStatus.FAILED and rows[1].error == {"code": "batch_expired", "message": "expired"}
    assert len(rows) == 2


def test_pydantic_parsing_records_validation_failures_per_row() -> None:
    answers = [RawResult("c0", ok=True, text='{"name": "a", "score": 4}'),
               RawResult("c1", ok=True, text='{"name": "b", "score": 9}'),
               RawResult("c2", ok=True, text="not json")]
    rows = join_results(keys(3), answers, OutputParser(Label), batch_id="b")
    assert rows[0].parsed == {"name": "a", "score": 4}
    assert rows[1].status == RowStatus.FAILED and rows[1].error["code"] == "invalid_output"
    assert "score" in rows[1].error["message"]
    assert rows[2].error["code"] == "invalid_output" and rows[1].output == '{"name": "b", "score": 9}'


def test_json_schema_parsing_and_truncation() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
    parser = OutputParser({"name": "thing", "schema": schema})
    assert parser.name == "thing" and parser.schema == schema
    answers = [RawResult("c0", ok=True, text='{"x": 1}'),
               RawResult("c1", ok=True, text='{"x": "one"}'),
               RawResult("c2", ok=True, text='{"x": ', finish_reason="length")]
    rows = join_results(keys(3), answers, parser, batch_id="b")
    assert rows[0].parsed == {"x": 1}
    assert rows[1].error["code"] == "invalid_output" and "at x" in rows[1].error["message"]
    assert rows[2].error["code"] == "truncated" and rows[2].extra["finish_reason"] == "length"


def test_embeddings_land_as_parsed_vectors() -> None:
    rows = join_results(keys(1), [RawResult("c0", ok=True, embedding=[0.1, 0.2])], OutputParser(), batch_id="b")
    assert rows[0].parsed == [0.1, 0.2] and rows[0].status == RowStatus.SUCCEEDED


def test_finish_reasons_are_neutral_whatever_word_the_provider_used() -> None:
    """Complete answers carry no note; a cut one is ``truncated`` when it does not parse, and only a
    cut one: an answer that ended for another reason and does not parse is ``invalid_output``."""
    parser = OutputParser({"name": "thing", "schema": {"type": "object"}})
    words: list[str | FinishReason] = ["STOP", "end_turn", "tool_calls", FinishReason.TOOL_USE, "MAX_TOKENS",
                                       "max_tokens", FinishReason.OTHER, "pause_turn"]
    answers = [RawResult(f"c{i}", ok=True, text="{}" if i < 4 else '{"x": ', finish_reason=cast(Any, word))
               for i, word in enumerate(words)]
    rows = join_results(keys(len(words)), answers, parser, batch_id="b")
    assert [row.status for row in rows[:4]] == [RowStatus.SUCCEEDED] * 4
    assert all("finish_reason" not in row.extra for row in rows[:4])
    assert [(row.error or {}).get("code") for row in rows[4:]] == ["truncated", "truncated", "invalid_output",
                                                                    "invalid_output"]
    assert [row.extra["finish_reason"] for row in rows[4:]] == ["length", "length", "other", "other"]
