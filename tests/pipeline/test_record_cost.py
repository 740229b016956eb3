"""pipeline/record_cost: the price note of a results file, and the one way a record is priced (at
collect by write_results, at land by with_record_cost)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from airflow_llm_batch.operators.landing import with_record_cost
from airflow_llm_batch.pipeline import fast_json
from airflow_llm_batch.pipeline.answered import write_results
from airflow_llm_batch.pipeline.cost import row_cost_usd
from airflow_llm_batch.pipeline.prices import PriceTable
from airflow_llm_batch.pipeline.record_cost import COST_KEY, RecordPricer, price_note, price_record
from airflow_llm_batch.pipeline.types import ResultRow, RowStatus, Usage, result_record

PRICE = PriceTable.default().price_for("openai", "gpt-4o-mini")
assert PRICE is not None


def test_the_note_names_the_price_exactly() -> None:
    note = price_note(PRICE)
    assert note is not None and note.startswith("p-") and len(note) == 14
    assert price_note(replace(PRICE)) == note
    assert price_note(replace(PRICE, output=PRICE.output + 1e-9)) != note
    assert price_note(None) is None


def _rows() -> list[ResultRow]:
    return [ResultRow("a", RowStatus.SUCCEEDED, "x", usage=Usage(1000, 200, 300), extra={"team": "ops"}),
            ResultRow("b", RowStatus.FAILED, None, error={"code": "e", "message": "m"}, attempts=2),
            ResultRow("c", RowStatus.SUCCEEDED, "z", usage=Usage(5, 7), answered_by="realtime")]


def test_a_file_written_priced_holds_what_landing_writes(tmp_path: Path) -> None:
    plain = write_results(tmp_path / "plain.jsonl", [r.to_dict() for r in _rows()[:2]] + _rows()[2:])
    priced = write_results(tmp_path / "priced.jsonl", [r.to_dict() for r in _rows()[:2]] + _rows()[2:],
                           price=PRICE, answered_by="realtime")
    assert priced == plain == {"succeeded": 2, "failed": 1, "error:e": 1, "tokens_input": 1005,
                               "tokens_output": 207, "tokens_cached": 300}
    landed = with_record_cost((result_record(fast_json.loads(line), "realtime")
                               for line in (tmp_path / "plain.jsonl").read_bytes().splitlines()), PRICE)
    assert (tmp_path / "priced.jsonl").read_bytes() == b"".join(fast_json.dumps_line(r) for r in landed)
    records = [fast_json.loads(line) for line in (tmp_path / "priced.jsonl").read_bytes().splitlines()]
    assert all(list(r)[-1] == COST_KEY and r["answered_by"] == "realtime" for r in records)
    assert records[0][COST_KEY] > 0 and records[1][COST_KEY] == 0


def test_pricing_again_keeps_the_position_and_the_value() -> None:
    record = price_record(_rows()[0].to_dict(), PRICE)
    again = price_record(dict(record), PRICE)
    assert list(again) == list(record) and again == record


def test_the_pricer_of_many_records_gives_each_the_cost_of_its_own_usage(monkeypatch: Any) -> None:
    monkeypatch.setattr(RecordPricer, "MEMO", 7)  # the memo starts over many times on the way
    pricer = RecordPricer(PRICE)
    for i in range(200):
        usage = Usage(10 + i % 13, 1 + i % 5, i % 3)
        path = "realtime" if i % 4 == 0 else "batch"
        record = {"usage": usage.to_dict(), "answered_by": path}
        assert pricer(record)[COST_KEY] == row_cost_usd(PRICE, usage, realtime=path == "realtime")
        assert pricer.cost(tuple(usage), path == "realtime") == record[COST_KEY]
        assert all(len(memo) <= 7 for memo in pricer._memos)
