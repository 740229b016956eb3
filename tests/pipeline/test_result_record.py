"""types.result_record: a stored results line's object as from_dict + to_dict give it, without the round
trip when the line is laid out as to_dict writes it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_llm_batch.pipeline import fast_json
from airflow_llm_batch.pipeline.types import ResultRow, RowStatus, Usage, result_record


def stored(row: ResultRow) -> dict[str, Any]:
    """What a results file line holds for ``row``, read back."""
    return fast_json.loads(fast_json.dumps_line(row.to_dict()))  # type: ignore[no-any-return]


ROWS = [
    ResultRow("k1", RowStatus.SUCCEEDED, "yes", {"a": [1, 2]}, None, Usage(10, 3, 4), "m", "b1", "c1"),
    ResultRow("k2", RowStatus.FAILED, "{bad", None, {"code": "invalid_output", "message": "no"}, Usage(5, 1),
              batch_id="b1", custom_id="c2", attempts=2, extra={"ticket": "T2", "fingerprint": "f" * 64}),
    ResultRow("k3", RowStatus.SUCCEEDED, "hit", None, cached=True, answered_by="cache", extra={"repeat_of": "k1"}),
]


@pytest.mark.parametrize("row", ROWS, ids=["plain", "failed-with-extras", "cached"])
@pytest.mark.parametrize("answered_by", [None, "batch", "realtime"])
def test_a_line_as_written_is_its_own_record(row: ResultRow, answered_by: str | None) -> None:
    data = stored(row)
    expected = ResultRow.from_dict(stored(row))
    expected.answered_by = answered_by or expected.answered_by
    record = result_record(data, answered_by)
    assert record is data  # no round trip
    assert fast_json.dumps_line(record) == fast_json.dumps_line(expected.to_dict())


def _older_layout(data: dict[str, Any]) -> dict[str, Any]:
    del data["answered_by"]  # written before answered_by existed: from_dict fills it before the extras
    return data


def _keys_reordered(data: dict[str, Any]) -> dict[str, Any]:
    return {"status": data.pop("status"), **data}


def _usage_as_floats(data: dict[str, Any]) -> dict[str, Any]:
    data["usage"] = {k: float(v) for k, v in data["usage"].items()}
    return data


def _total_off(data: dict[str, Any]) -> dict[str, Any]:
    data["usage"]["total_tokens"] += 1
    return data


def _usage_missing_a_count(data: dict[str, Any]) -> dict[str, Any]:
    del data["usage"]["cached_input_tokens"]
    return data


def _attempts_as_text(data: dict[str, Any]) -> dict[str, Any]:
    data["attempts"] = "2"
    return data


def _empty_answered_by(data: dict[str, Any]) -> dict[str, Any]:
    data["answered_by"] = ""
    return data


def _no_usage(data: dict[str, Any]) -> dict[str, Any]:
    data["usage"] = None
    return data


@pytest.mark.parametrize("edit", [_older_layout, _keys_reordered, _usage_as_floats, _total_off,
                                  _usage_missing_a_count, _attempts_as_text, _empty_answered_by, _no_usage])
@pytest.mark.parametrize("answered_by", [None, "realtime"])
def test_any_other_line_goes_through_the_row(edit: Any, answered_by: str | None) -> None:
    for row in ROWS:
        data = edit(stored(row))
        expected = ResultRow.from_dict(json.loads(json.dumps(data)))
        expected.answered_by = answered_by or expected.answered_by
        record = result_record(data, answered_by)
        assert record is not data
        assert fast_json.dumps_line(record) == fast_json.dumps_line(expected.to_dict())


def test_an_unknown_status_still_fails_as_from_dict_does() -> None:
    data = stored(ROWS[0])
    data["status"] = "maybe"
    with pytest.raises(ValueError):
        result_record(data, "batch")
    with pytest.raises(KeyError):
        result_record({"status": "succeeded"}, "batch")
