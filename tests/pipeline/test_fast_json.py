"""The hot loops' JSON (fast_json.py) and the request fingerprint, which must never change."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from airflow_llm_batch.pipeline import fast_json
from airflow_llm_batch.pipeline.fingerprint import request_fingerprint

VALUES: list[Any] = [
    None, True, False, 0, -7, 2**63 - 1, 0.2, 3.0, -1.5, "", "plain", "é 日本 \U0001f600", "\u2028\u2029",
    "{{ 1+1 }} {% x", "\x00\x01\x1f\x7f", "tab\t nl\n cr\r bs\b ff\f quote\" back\\ slash/",
    [1, "a", None, [2.5]], {"k": {"nested": ["v"]}, "é": 1},
]


@pytest.mark.parametrize("value", VALUES)
def test_dumps_equals_compact_json_and_round_trips(value: Any) -> None:
    expected = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    assert fast_json.dumps(value) == expected
    assert fast_json.dumps_line(value) == expected + b"\n"
    assert fast_json.loads(fast_json.dumps(value)) == value


def test_what_orjson_refuses_goes_through_json() -> None:
    assert fast_json.dumps({"big": 10**30, 1: "int key"}) == b'{"big":1000000000000000000000000000000,"1":"int key"}'
    assert fast_json.loads(fast_json.dumps_line([10**30])) == [10**30]


def test_unknown_values_are_written_as_text_like_before() -> None:
    when = dt.datetime(2026, 12, 1, 5, 30, tzinfo=dt.timezone.utc)
    assert fast_json.dumps({"at": when, "day": when.date()}) == json.dumps(
        {"at": when, "day": when.date()}, separators=(",", ":"), default=str).encode()


def test_loads_raises_value_error_on_bad_input() -> None:
    with pytest.raises(ValueError):
        fast_json.loads(b'{"a": ')


#: computed on main (163a1fb) BEFORE the orjson change: every stored cache entry is keyed by these
KNOWN_LINE = {
    "custom_id": "row-1", "method": "POST", "url": "/v1/chat/completions",
    "body": {"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": "Tu es « utile » \u2014 ok"},
        {"role": "user", "content": 'Classify: {{ 1+1 }} {% x "q" \\ \n\t é 日本 \U0001f600 \x7f \x01'}],
        "temperature": 0.2, "max_completion_tokens": 300, "top_p": 1e-07, "seed": 12345678901,
        "response_format": {"type": "json_schema", "json_schema": {"name": "r", "strict": True, "schema": {
            "type": "object", "properties": {"key": {"type": "string"}, "b": {"type": "number"}},
            "required": ["key", "b"], "additionalProperties": False}}}},
}


def test_fingerprints_are_the_ones_main_computed() -> None:
    assert request_fingerprint("openai", KNOWN_LINE, "http://127.0.0.1:8787/v1/") == (
        "f2b77b3a734da62e8f6ad66fc5cf52a682dae647b59d2c9d6cceac463ee03b62")
    anthropic = {"custom_id": "x", "params": {"model": "claude", "max_tokens": 1024,
                                              "messages": [{"role": "user", "content": "hi"}]}}
    assert request_fingerprint("anthropic", anthropic) == (
        "eeb7e5f00fe1a44c523b4c7448754738677041c59282f0da4c7fe3d461214378")


def test_loads_inexact_reads_what_loads_reads_except_integers_beyond_64_bits() -> None:
    line = b'{"a": [1, 2.5, null, true, "\\u00e9 12345678901234567890123"], "n": 18446744073709551615}'
    assert fast_json.loads_inexact(line) == fast_json.loads(line) == json.loads(line)
    huge = b'{"n": 123456789012345678901234}'
    assert fast_json.loads(huge) == {"n": 123456789012345678901234}
    assert fast_json.loads_inexact(huge) == {"n": 1.2345678901234568e23}  # why only answer lines use it
