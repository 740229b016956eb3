"""backends/strict_lines: the rules the typed line decoders share read numbers as orjson does and fail a
line whose unknown field msgspec would skip unchecked."""

from __future__ import annotations

import msgspec
import orjson
import pytest

from airflow_llm_batch.pipeline.strict_lines import DECODE_ERRORS, Float, Int64, Strict


class _Row(Strict):
    count: Int64
    score: Float | None = None


_decode = msgspec.json.Decoder(_Row).decode


@pytest.mark.parametrize("line", [
    b'{"count": 1, "other": 2}', b'{"count": true}', b'{"count": 1.0}', b'{"count": "1"}',
    b'{"count": 9223372036854775808}', b'{"count": -9223372036854775809}', b'{"count": 1, "score": 1e400}',
    b'{"count": 1, "other": "\xff"}', b'{"count": 1}x', b'[' * 2000 + b']' * 2000, b'\xff',
])
def test_a_line_outside_the_rules_fails(line: bytes) -> None:
    with pytest.raises(DECODE_ERRORS):
        _decode(line)


@pytest.mark.parametrize("line", [
    b'{"count": 9223372036854775807}', b'{"count": -9223372036854775808, "score": -1.5e308}',
    b'{"count": 1, "count": 2}', b' {"count": 0, "score": null}\r',
])
def test_a_line_within_the_rules_reads_as_orjson_reads_it(line: bytes) -> None:
    row, document = _decode(line), orjson.loads(line)
    assert (row.count, row.score) == (document["count"], document.get("score"))
    assert type(row.count) is int
