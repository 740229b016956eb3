"""pipeline/plain_record: a plain record writes, byte for byte, the line fast_json writes for its dict, and
that dict is the record ``ResultRow.to_dict`` makes for the same row (keys in the same order)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from airflow_llm_batch.pipeline import fast_json
from airflow_llm_batch.pipeline.answered import write_results
from airflow_llm_batch.pipeline.plain_record import PlainRecord, PlainUsage, encode_record
from airflow_llm_batch.pipeline.types import ResultRow, RowStatus, Usage


def plain(output: Any = "an answer", **changes: Any) -> PlainRecord:
    record = PlainRecord("k1", "succeeded", output, None, None, PlainUsage(11, 7, 3, 18), "gpt-4o-mini", "batch_1",
                         "c1", 2, False, "batch")
    for name, value in changes.items():
        setattr(record, name, value)
    return record


TEXTS = ["plain", "é ✓ 答え 😀", 'quote " backslash \\ slash /', "\x00\x01\x1f\x7f \t\n\r\b\f", "\u2028\u2029",
         "</script>", "", None]
EXTRAS: list[dict[str, Any]] = [{}, {"fingerprint": "fp-1"}, {"cost_usd": 0.0000123}, {"cost_usd": None},
                                {"fingerprint": "", "cost_usd": 1234.5678}, {"model": None, "batch_id": None}]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("extra", EXTRAS)
def test_a_plain_record_writes_what_fast_json_writes_for_its_dict(text: str | None, extra: dict[str, Any]) -> None:
    record = plain(text, **extra)
    assert encode_record(record) == fast_json.dumps(record.to_dict())
    assert fast_json.loads(encode_record(record)) == record.to_dict()


def test_its_dict_is_the_rows_to_dict_with_the_extras_after() -> None:
    row = ResultRow("k1", RowStatus.SUCCEEDED, "an answer", None, None, Usage(11, 7, 3), "gpt-4o-mini", "batch_1",
                    "c1", extra={"fingerprint": "fp-1"})
    row.attempts = 2
    expected = {**row.to_dict(), "cost_usd": 0.5}
    got = plain(fingerprint="fp-1", cost_usd=0.5).to_dict()
    assert got == expected and list(got) == list(expected)
    assert "fingerprint" not in plain().to_dict() and "cost_usd" not in plain().to_dict()  # unset: not written


def test_costs_are_spelled_as_orjson_spells_them_below_1e16() -> None:
    for cost in (0.0, 1e-12, 0.00001, 0.1 + 0.2, 123456.789, 9.99e15):
        assert encode_record(plain(cost_usd=cost)) == fast_json.dumps(plain(cost_usd=cost).to_dict())


def test_a_value_msgspec_refuses_falls_back_to_fast_json(tmp_path: Path) -> None:
    """A lone surrogate (a provider may send one escaped): msgspec refuses it; the line is fast_json's."""
    record = plain("half a pair \ud83d here")
    with pytest.raises(UnicodeEncodeError):
        msgspec.json.encode(record)
    line = encode_record(record)
    assert line == fast_json.dumps(record.to_dict()) and b"\xed\xa0\xbd" in line  # as fast_json writes it
    counts = write_results(tmp_path / "r.jsonl", [plain(), record, plain("after")])
    lines = (tmp_path / "r.jsonl").read_bytes().splitlines()
    assert lines == [encode_record(plain()), line, encode_record(plain("after"))]
    assert counts == {"succeeded": 3, "tokens_input": 33, "tokens_output": 21, "tokens_cached": 9}
