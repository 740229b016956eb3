"""The join's record path (``ChunkOutcome.final_records``, no ResultRow per row) writes the same results
file, byte for byte, with the same counts, as the ResultRow path (``to_result_row`` + ``to_dict``).

The answers are real OpenAI output lines decoded by the backend's decoder: a success, a refusal, an
answer cut by the token limit, one the content filter withheld, an HTTP error line, a batch-level error
line, and a row with no answer; rows carry columns and fingerprints, one carried column shares its name
with a result field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_llm_batch.backends.openai import decode_output_line, output_object
from airflow_llm_batch.pipeline import fast_json
from airflow_llm_batch.pipeline.answered import WRITE_BYTES, write_results
from airflow_llm_batch.pipeline.join import JoinContext, RetryRule, classify_chunk, to_result_row
from airflow_llm_batch.pipeline.key_index import KeyEntry
from airflow_llm_batch.pipeline.parsing import OutputParser
from airflow_llm_batch.pipeline.plain_record import PlainRecord
from airflow_llm_batch.pipeline.policy import RetryPolicy
from airflow_llm_batch.pipeline.prices import PriceTable
from airflow_llm_batch.pipeline.record_cost import COST_KEY, RecordPricer
from airflow_llm_batch.pipeline.types import ResultRow


def chat(custom_id: str, content: str | None, finish: str = "stop", refusal: str | None = None) -> dict[str, Any]:
    return {"id": "batch_req_1", "custom_id": custom_id, "error": None, "response": {"status_code": 200, "body": {
        "object": "chat.completion", "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": refusal},
                     "finish_reason": finish}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18,
                  "prompt_tokens_details": {"cached_tokens": 3}}}}}


LINES = [
    chat("c0", '{"a": 1}'),
    chat("c1", None, refusal="I can't help with that"),
    chat("c2", '{"a": ', finish="length"),
    chat("c3", "withheld", finish="content_filter"),
    {"custom_id": "c4", "response": {"status_code": 429, "body": {"error": {"code": "rate_limit_exceeded",
                                                                           "message": "slow down"}}}},
    {"custom_id": "c5", "response": None, "error": {"code": "batch_expired", "message": "expired"}},
    # c6: no answer
    chat("c7", "not json at all", finish="length"),
    chat("c8", '{"b": 2}'),
    chat("stray", "no row has this custom_id"),
    chat("c9", "a plain answer"),  # c9, c10: the common rows (no carry, no fingerprint, finish stop)
    chat("c10", None),
]
ENTRIES = [
    KeyEntry("c0", "k0", 0, fingerprint="fp0", carry={"ticket": "T-0", "n": 1}),
    KeyEntry("c1", "k1", 1, carry={"ticket": "T-1", "n": None}),
    KeyEntry("c2", "k2", 2, fingerprint="fp2"),
    KeyEntry("c3", "k3", 3),
    KeyEntry("c4", "k4", 4, carry={"ticket": "T-4"}),
    KeyEntry("c5", "k5", 5),
    KeyEntry("c6", "k6", 6, fingerprint="fp6", carry={"ticket": "T-6"}),
    KeyEntry("c7", "k7", 7),
    KeyEntry("c8", "k8", 8, carry={"status": "open", "ticket": "T-8"}),  # a carried name equal to a field's
    KeyEntry("c9", "k9", 9),
    KeyEntry("c10", "k10", 10),
]


def answers() -> dict[str, Any]:
    decoded = [decode_output_line(output_object(fast_json.dumps(line)) or {}) for line in LINES]
    return {answer.custom_id: answer for answer in decoded}


def as_dicts(records: Any) -> list[dict[str, Any]]:
    """Records as dicts (a plain record's ``to_dict``; a ResultRow's too)."""
    return [r if isinstance(r, dict) else r.to_dict() for r in records]


def rows_the_row_way(parser: OutputParser, context: JoinContext) -> list[ResultRow]:
    """Each entry's ResultRow as ``to_result_row`` builds it, with the context's attempt number."""
    found = answers()
    rows = []
    for entry in ENTRIES:
        row = to_result_row(entry, found.get(entry.custom_id), parser, context.batch_id, *context.no_answer)
        row.attempts = context.attempt
        rows.append(row)
    return rows


@pytest.mark.parametrize("response_format", [None, "json"])
def test_records_and_rows_write_the_same_bytes_and_counts(tmp_path: Path, response_format: str | None) -> None:
    parser, context = OutputParser(response_format), JoinContext("batch_1", attempt=2)
    outcome = classify_chunk(ENTRIES, answers(), parser, context)
    by_records = write_results(tmp_path / "records.jsonl", outcome.final_records())
    by_rows = write_results(tmp_path / "rows.jsonl", rows_the_row_way(parser, context))
    assert (tmp_path / "records.jsonl").read_bytes() == (tmp_path / "rows.jsonl").read_bytes()
    assert by_records == by_rows
    assert outcome.unmatched == 1
    written = [fast_json.loads(line) for line in (tmp_path / "records.jsonl").read_bytes().splitlines()]
    assert [r["key"] for r in written] == [e.key for e in ENTRIES]
    codes = {r["key"]: (r["error"] or {}).get("code") for r in written}
    truncated = "truncated" if response_format == "json" else None
    invalid = "invalid_output" if response_format == "json" else None
    assert codes == {"k0": None, "k1": "refusal", "k2": truncated, "k3": "content_filter",
                     "k4": "rate_limit_exceeded", "k5": "batch_expired", "k6": "missing_result", "k7": truncated,
                     "k8": None, "k9": invalid, "k10": invalid}
    assert written[8]["status"] == "open"  # the carried column, as to_dict writes it...
    assert by_records["succeeded"] == (2 if response_format == "json" else 6)  # ...and the row's own status counted
    assert written[0]["usage"] == {"input_tokens": 11, "output_tokens": 7, "cached_input_tokens": 3,
                                   "total_tokens": 18}


def test_final_rows_are_the_records_as_rows() -> None:
    parser, context = OutputParser("json"), JoinContext("batch_1")
    records = as_dicts(classify_chunk(ENTRIES, answers(), parser, context).final_records())
    rows = list(classify_chunk(ENTRIES, answers(), parser, context).final_rows())
    assert [row.to_dict() for row in rows] == records


def test_an_output_line_reads_numbers_inexactly_but_its_answer_is_the_same() -> None:
    line = chat("c0", "99999999999999999999 stays text")
    line["response"]["body"]["created"] = 123456789012345678901234  # a number no field of the answer reads
    raw = fast_json.dumps(line)
    document = output_object(raw)
    assert document is not None and isinstance(document["response"]["body"]["created"], float)
    assert decode_output_line(document) == decode_output_line(fast_json.loads(raw))
    assert output_object(b"  ") == {} and output_object(b"{broken") is None


def test_the_common_rows_record_is_the_rows_own_dict() -> None:
    """c9 and c10 take the join's fast path (a plain record): each record equals its row's ``to_dict``, key for
    key in order."""
    parser, context = OutputParser(None), JoinContext("batch_1", attempt=3)
    plain = list(classify_chunk(ENTRIES[9:], answers(), parser, context).final_records())
    assert all(type(r) is PlainRecord for r in plain)
    records = as_dicts(plain)
    expected = [row.to_dict() for row in rows_the_row_way(parser, context)[9:]]
    assert records == expected and [list(r) for r in records] == [list(r) for r in expected]
    assert records[0]["output"] == "a plain answer" and records[1]["output"] is None


CONTEXTS = {
    "retry rule": JoinContext("batch_1", attempt=1, retry=RetryRule(RetryPolicy(
        retry_codes=frozenset({"rate_limit_exceeded", "missing_result", "truncated"})))),
    "last attempt": JoinContext("batch_1", attempt=3, retry=RetryRule(RetryPolicy())),
    "cache answers": JoinContext("batch_1", cache_answers=True),
    "breaker": JoinContext("batch_1", retry=RetryRule(RetryPolicy(), breaker=True)),
}


@pytest.mark.parametrize("context", CONTEXTS.values(), ids=list(CONTEXTS))
@pytest.mark.parametrize("response_format", [None, "json"])
def test_with_retries_and_the_cache_the_records_are_the_rows_that_stay(tmp_path: Path, context: JoinContext,
                                                                        response_format: str | None) -> None:
    parser, rule = OutputParser(response_format), context.retry
    outcome = classify_chunk(ENTRIES, answers(), parser, context)
    by_records = write_results(tmp_path / "records.jsonl", outcome.final_records())
    found, kept, retried = answers(), [], []
    for position, (entry, row) in enumerate(zip(ENTRIES, rows_the_row_way(parser, context), strict=True)):
        answer = found.get(entry.custom_id)
        code = row.error["code"] if row.error else None
        if rule is not None and rule.wants(code, unanswered=answer is None, attempt=context.attempt, adopted=False):
            retried.append((position, entry))
        else:
            kept.append(row)
    by_rows = write_results(tmp_path / "rows.jsonl", kept)
    assert (tmp_path / "records.jsonl").read_bytes() == (tmp_path / "rows.jsonl").read_bytes()
    assert by_records == by_rows and outcome.retry == retried and outcome.unmatched == 1
    cached = [fp for fp, _ in outcome.to_cache]
    text_mode = response_format is None  # a cut answer (c2) succeeds as text, fails as JSON
    assert cached == ((["fp0", "fp2"] if text_mode else ["fp0"]) if context.cache_answers else [])
    if rule is not None and not rule.breaker and context.attempt == 1:
        assert (6, ENTRIES[6]) in outcome.retry and (4, ENTRIES[4]) in outcome.retry


def test_adopted_rows_join_on_the_custom_id_they_have_in_the_adopted_batch() -> None:
    entries = [KeyEntry("new9", "k9", 9, adopted_id="c9"), KeyEntry("new10", "k10", 10, adopted_id="c10"),
               KeyEntry("new11", "k11", 11, adopted_id="gone")]
    context = JoinContext("batch_1", adopted=True, retry=RetryRule(RetryPolicy()))
    outcome = classify_chunk(entries, answers(), OutputParser(None), context)
    records = as_dicts(outcome.final_records())
    assert [(r["key"], r["custom_id"], r["output"]) for r in records] == [("k9", "new9", "a plain answer"),
                                                                          ("k10", "new10", None)]
    assert outcome.retry == [(2, entries[2])]  # adopted and unanswered: sent again


def _plain_chunk(count: int) -> tuple[list[KeyEntry], dict[str, Any]]:
    """``count`` common rows (no carry, no fingerprint, finish stop) with varied usages, after the mixed chunk
    (but its row carrying ``status``: the operator refuses such a column, see settings_checks.py)."""
    entries, found = [e for e in ENTRIES if "status" not in (e.carry or {})], answers()
    for i in range(count):
        line = chat(f"p{i}", f"answer {i}")
        usage = line["response"]["body"]["usage"]
        usage["prompt_tokens"], usage["completion_tokens"] = 100 + i % 37, 1 + i % 11
        usage["prompt_tokens_details"]["cached_tokens"] = i % 3 * 10
        answer = decode_output_line(output_object(fast_json.dumps(line)) or {})
        found[answer.custom_id] = answer
        entries.append(KeyEntry(f"p{i}", f"pk{i}", 20 + i))
    return entries, found


@pytest.mark.parametrize("path", ["batch", "realtime"])
def test_the_join_prices_plain_records_as_write_results_prices_them(tmp_path: Path, path: str) -> None:
    """Given a pricer, the join's plain records come priced (and with the chunk's path); written with the
    price they are byte for byte what write_results makes of the unpriced records, over several writes."""
    price = PriceTable.default().price_for("openai", "gpt-4o-mini")
    assert price is not None
    entries, found = _plain_chunk(1500)  # more than 2 * WRITE_BYTES: the lines go out in several writes
    parser = OutputParser(None)
    priced = classify_chunk(entries, dict(found), parser,
                            JoinContext("batch_1", answered_by=path, pricer=RecordPricer(price)))
    records = list(priced.final_records())
    plain = [r for r in records if isinstance(r, PlainRecord)]
    assert [r.key for r in plain] == ["k9", "k10", *(f"pk{i}" for i in range(1500))]  # c9, c10 are plain too
    assert all(r.cost_usd is not None and r.answered_by == path for r in plain)
    counts = write_results(tmp_path / "joined.jsonl", records, price=price, answered_by=path)
    unpriced = classify_chunk(entries, dict(found), parser, JoinContext("batch_1")).final_records()
    assert write_results(tmp_path / "written.jsonl", unpriced, price=price, answered_by=path) == counts
    assert (tmp_path / "joined.jsonl").read_bytes() == (tmp_path / "written.jsonl").read_bytes()
    assert (tmp_path / "joined.jsonl").stat().st_size > 2 * WRITE_BYTES
    lines = (tmp_path / "joined.jsonl").read_bytes().splitlines()
    assert len(lines) == len(entries) and counts["succeeded"] == 1500 + 5
    costs = {fast_json.loads(line)[COST_KEY] for line in lines[-1500:]}
    assert len(costs) > 100  # the usages differ, and so do their prices


def test_fingerprinted_plain_rows_write_the_row_paths_bytes_and_go_to_the_cache(tmp_path: Path) -> None:
    """With the request cache on every entry has a fingerprint: such a plain row is still made in the join's
    one literal (its fingerprint as the record's extra), writes what the row path writes, priced or not, and
    its answer is kept for the cache exactly when the general path keeps it."""
    price = PriceTable.default().price_for("openai", "gpt-4o-mini")
    assert price is not None
    entries, found = _plain_chunk(300)
    entries = [e if e.carry or e.fingerprint or i % 3 else e.with_fingerprint(f"fp-{e.custom_id}")
               for i, e in enumerate(entries)]
    parser = OutputParser(None)
    context = JoinContext("batch_1", cache_answers=True)
    outcome = classify_chunk(entries, dict(found), parser, context)
    by_records = write_results(tmp_path / "records.jsonl", outcome.final_records(), price=price, answered_by="batch")
    rows = []
    for entry in entries:
        row = to_result_row(entry, found.get(entry.custom_id), parser, "batch_1", *context.no_answer)
        rows.append(row)
    by_rows = write_results(tmp_path / "rows.jsonl", rows, price=price, answered_by="batch")
    assert by_records == by_rows
    assert (tmp_path / "records.jsonl").read_bytes() == (tmp_path / "rows.jsonl").read_bytes()
    cached = [fp for fp, _ in outcome.to_cache]
    succeeded = [e.fingerprint for e, r in zip(entries, rows, strict=True) if e.fingerprint and r.error is None]
    assert cached == succeeded and len(cached) >= 100 and all(answer.ok for _, answer in outcome.to_cache)
    lines = [fast_json.loads(line) for line in (tmp_path / "records.jsonl").read_bytes().splitlines()]
    marked = [line for line in lines if line["key"].startswith("pk") and "fingerprint" in line]
    assert len(marked) == 100 and all(list(line)[-2:] == ["fingerprint", COST_KEY] for line in marked)
