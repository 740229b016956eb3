"""backends/openai_lines.decode_common_line and openai.read_output_line: an output file line read from its
bytes gives what orjson + the general decoder (decode_any_line) give, for the common line and every near
miss; a line orjson cannot read stays unread (results() counts it as broken), whatever msgspec would do."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from openai import AsyncOpenAI

from airflow_llm_batch.backends import openai as openai_backend
from airflow_llm_batch.backends.openai import OpenAIBatchBackend, decode_any_line, output_object, read_output_line
from airflow_llm_batch.backends.openai_lines import decode_common_line
from airflow_llm_batch.pipeline.types import FinishReason, RawResult, Usage
from tests.backends.test_openai_backend import _completed_batch
from tests.backends.test_openai_decode_fast import NEAR_MISSES, common_line

COMMON = orjson.dumps(common_line())


def reference(line: bytes) -> RawResult | None:
    """What the line gave before: orjson, then the general decoder (None: blank, ``{}`` or broken)."""
    try:
        document = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return decode_any_line(document) if type(document) is dict and document else None


def assert_read_as_before(line: bytes) -> RawResult | None:
    answer, expected = read_output_line(line), reference(line)
    assert answer == expected
    if answer is not None and expected is not None:
        assert [type(field) for field in answer] == [type(field) for field in expected]
        assert [type(count) for count in answer.tokens] == [int, int, int]
    return answer


def swap(old: bytes, new: bytes, line: bytes = COMMON) -> bytes:
    assert old in line
    return line.replace(old, new, 1)


def test_the_common_line_is_read_from_its_bytes_without_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(line: bytes) -> Any:
        raise AssertionError("the common line went the general way")

    monkeypatch.setattr(openai_backend, "output_object", refused)
    answer = read_output_line(COMMON)
    assert answer == RawResult("T-1", True, "an answer", None, "gpt-4o-mini", Usage(44, 28, 3),
                               finish_reason=FinishReason.STOP)
    assert answer == reference(COMMON) and answer.finish_reason is FinishReason.STOP
    assert type(answer) is RawResult and type(answer.tokens) is tuple


def test_the_line_the_emulator_writes_is_a_common_line() -> None:
    """Every field OpenAI (and the emulator) writes on a chat completion line is declared."""
    line = common_line()
    line["response"]["body"].update(service_tier="default", system_fingerprint="fp_emulator")
    line["response"]["body"]["usage"]["completion_tokens_details"] = {
        "reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
    raw = orjson.dumps(line)
    assert decode_common_line(raw) is not None
    assert decode_common_line(raw) == reference(raw)


@pytest.mark.parametrize("change", NEAR_MISSES.values(), ids=list(NEAR_MISSES))
def test_a_near_miss_read_from_bytes_gives_what_it_gave(change: Callable[[dict[str, Any]], None]) -> None:
    line = common_line()
    change(line)
    assert assert_read_as_before(orjson.dumps(line)) is not None


def _with(path: tuple[Any, ...], value: Any) -> bytes:
    line: Any = common_line()
    target = line
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return orjson.dumps(line)


BODY, CHOICE, MESSAGE = ("response", "body"), ("response", "body", "choices", 0), \
    ("response", "body", "choices", 0, "message")
USAGE = (*BODY, "usage")
#: lines msgspec's types could read otherwise than orjson + the general decoder do
BYTE_CASES: dict[str, bytes] = {
    "prompt tokens 44.0": swap(b'"prompt_tokens":44', b'"prompt_tokens":44.0'),
    "prompt tokens 4.4e1": swap(b'"prompt_tokens":44', b'"prompt_tokens":4.4e1'),
    "prompt tokens true": swap(b'"prompt_tokens":44', b'"prompt_tokens":true'),
    "cached tokens false": swap(b'"cached_tokens":3', b'"cached_tokens":false'),
    "prompt tokens -0": swap(b'"prompt_tokens":44', b'"prompt_tokens":-0'),
    "prompt tokens negative": swap(b'"prompt_tokens":44', b'"prompt_tokens":-44'),
    "prompt tokens 2**63-1": swap(b'"prompt_tokens":44', b'"prompt_tokens":9223372036854775807'),
    "prompt tokens 2**63": swap(b'"prompt_tokens":44', b'"prompt_tokens":9223372036854775808'),
    "prompt tokens 2**64-1": swap(b'"prompt_tokens":44', b'"prompt_tokens":18446744073709551615'),
    "prompt tokens 2**64": swap(b'"prompt_tokens":44', b'"prompt_tokens":18446744073709551616'),
    "prompt tokens -2**63-1": swap(b'"prompt_tokens":44', b'"prompt_tokens":-9223372036854775809'),
    "prompt tokens 40 digits": swap(b'"prompt_tokens":44', b'"prompt_tokens":' + b"7" * 40),
    "created beyond 64 bits": swap(b'"created":1790000000', b'"created":' + b"9" * 30),
    "status 200.0": swap(b'"status_code":200', b'"status_code":200.0'),
    "status true": swap(b'"status_code":200', b'"status_code":true'),
    "content a list": _with((*MESSAGE, "content"), ["an answer"]),
    "content an object": _with((*MESSAGE, "content"), {"text": "an answer"}),
    "refusal false": _with((*MESSAGE, "refusal"), False),
    "refusal 0": _with((*MESSAGE, "refusal"), 0),
    "refusal empty list": _with((*MESSAGE, "refusal"), []),
    "model null": _with((*BODY, "model"), None),
    "model a number": _with((*BODY, "model"), 4),
    "custom_id empty": _with(("custom_id",), ""),
    "unknown top-level field": _with(("batch_note",), {"a": [1, 2.5, None]}),
    "unknown body field": _with((*BODY, "new_field"), "x"),
    "unknown message field": _with((*MESSAGE, "audio"), None),
    "unknown usage field": _with((*USAGE, "cost"), 0.01),
    "annotations with a citation": _with((*MESSAGE, "annotations"), [{"type": "url_citation"}]),
    "logprobs given": _with((*CHOICE, "logprobs"), {"content": [{"token": "a", "logprob": -0.1}]}),
    "message null": _with((*CHOICE, "message"), None),
    "body null": _with(BODY, None),
    "prompt details null": _with((*USAGE, "prompt_tokens_details"), None),
    "duplicate custom_id": swap(b'"custom_id":"T-1"', b'"custom_id":"A","custom_id":"T-1"'),
    "duplicate custom_id, first wrong type": swap(b'"custom_id":"T-1"', b'"custom_id":5,"custom_id":"T-1"'),
    "duplicate content": swap(b'"content":"an answer"', b'"content":"first","content":"an answer"'),
    "duplicate content, last null": swap(b'"content":"an answer"', b'"content":"an answer","content":null'),
    "duplicate error, last an object": swap(b'"error":null', b'"error":null,"error":{"code":"x"}'),
    "duplicate error, last null": swap(b'"error":null', b'"error":{"code":"x"},"error":null'),
    "duplicate status, last 200": swap(b'"status_code":200', b'"status_code":429,"status_code":200'),
    "duplicate finish reason": swap(b'"finish_reason":"stop"', b'"finish_reason":"length","finish_reason":"stop"'),
    "duplicate refusal": swap(b'"refusal":null', b'"refusal":"no","refusal":null'),
    "duplicate tokens": swap(b'"prompt_tokens":44', b'"prompt_tokens":1,"prompt_tokens":44'),
    "escaped key": swap(b'"custom_id"', b'"\\u0063ustom_id"'),
    "escaped finish reason": swap(b'"finish_reason":"stop"', b'"finish_reason":"\\u0073top"'),
    "non-ASCII content": _with((*MESSAGE, "content"), "réponse 答え 😀"),
    "non-ASCII custom_id and model": swap(b'"T-1"', '"Ü-1"'.encode(), _with((*BODY, "model"), "模型")),
    "escaped non-ASCII": swap(b'"an answer"', b'"r\\u00e9ponse \\u7b54\\u3048"'),
    "escaped surrogate pair": swap(b'"an answer"', b'"smile \\ud83d\\ude00"'),
    "escapes": swap(b'"an answer"', b'"a\\"b\\\\c\\/d\\n\\t\\r\\b\\f"'),
    "very long content": _with((*MESSAGE, "content"), "long answer é " * 100_000),
    "spaces and a carriage return": orjson.dumps(common_line(), option=orjson.OPT_INDENT_2).replace(b"\n", b" ")
    + b"\r",
}


@pytest.mark.parametrize("line", BYTE_CASES.values(), ids=list(BYTE_CASES))
def test_a_line_msgspec_could_read_otherwise_gives_what_it_gave(line: bytes) -> None:
    assert reference(line) is not None
    assert_read_as_before(line)


#: lines orjson refuses (results() counts them as broken), some of which msgspec would read if it skipped
#: the fields it does not need
REFUSED: dict[str, bytes] = {
    "invalid UTF-8 in an unread field": swap(b'"request_id":"r1"', b'"request_id":"\xff\xfe"'),
    "overlong UTF-8 in an unread field": swap(b'"request_id":"r1"', b'"request_id":"\xc0\xaf"'),
    "UTF-8 surrogate in an unread field": swap(b'"request_id":"r1"', b'"request_id":"\xed\xa0\x80"'),
    "invalid UTF-8 in the content": swap(b'"an answer"', b'"\xff"'),
    "lone surrogate escape": swap(b'"an answer"', b'"\\ud800"'),
    "1e400 in an unread field": swap(b'"created":1790000000', b'"created":1e400'),
    "400-digit integer in an unread field": swap(b'"created":1790000000', b'"created":' + b"1" * 400),
    "1e309 in an unknown field": _with(("extra",), 0).replace(b'"extra":0', b'"extra":1e309'),
    "NaN": swap(b'"created":1790000000', b'"created":NaN'),
    "nested 1100 deep": _with(("extra",), 0).replace(b'"extra":0', b'"extra":' + b"[" * 1100 + b"]" * 1100),
    "trailing garbage": COMMON + b" x",
    "two objects": COMMON + COMMON,
    "byte order mark": b"\xef\xbb\xbf" + COMMON,
    "raw control character": swap(b'"an answer"', b'"an\x01answer"'),
    "cut short": COMMON[:-1],
}


@pytest.mark.parametrize("line", REFUSED.values(), ids=list(REFUSED))
def test_a_line_orjson_refuses_stays_broken(line: bytes) -> None:
    assert reference(line) is None and output_object(line) is None  # counted as broken by results()
    assert decode_common_line(line) is None and read_output_line(line) is None


def test_a_line_nested_deep_but_readable_by_orjson_is_read_the_general_way() -> None:
    line = _with(("extra",), 0).replace(b'"extra":0', b'"extra":' + b"[" * 1010 + b"]" * 1010)
    assert decode_common_line(line) is None  # msgspec's depth limit is lower than orjson's
    assert assert_read_as_before(line) is not None


@pytest.mark.parametrize("line", [b"", b"  \r", b"{}", b"[1, 2]", b'"text"', b"null", b"{broken"])
def test_a_line_without_an_answer_gives_none(line: bytes) -> None:
    assert read_output_line(line) is None and decode_common_line(line) is None


async def test_results_read_every_emulator_line_from_its_bytes(
        emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    client = AsyncOpenAI(base_url=emulator.openai_base_url, api_key="test-key", max_retries=1)
    backend = OpenAIBatchBackend(client)
    try:
        batch_id = await _completed_batch(client)
        general = [answer async for answer in backend.results(batch_id)]
        monkeypatch.setattr(openai_backend, "output_object", lambda line: pytest.fail("went the general way"))
        fast = [answer async for answer in backend.results(batch_id)]
        assert fast == general and sorted(answer.custom_id for answer in fast) == ["r0", "r1", "r2"]
        assert all(answer.ok and answer.text and answer.finish_reason is FinishReason.STOP for answer in fast)
    finally:
        await backend.aclose()

