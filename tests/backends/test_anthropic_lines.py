"""backends/anthropic_lines.decode_common_line and anthropic_results.read_results_line: a results line read
from its bytes gives what fast_json + the SDK's model + the general decoder (decode_result) give, for the
common line and every near miss; a line orjson cannot read stays unread (results() counts it as broken)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from anthropic._models import construct_type_unchecked
from anthropic.types.messages import MessageBatchIndividualResponse

from airflow_llm_batch.backends import anthropic_results
from airflow_llm_batch.backends.anthropic_lines import decode_common_line
from airflow_llm_batch.backends.anthropic_results import (
    decode_result,
    read_results_line,
    results_object,
)
from airflow_llm_batch.emulator.anthropic_answers import CacheUse, message_result
from airflow_llm_batch.pipeline import fast_json
from airflow_llm_batch.pipeline.types import UNREADABLE_ANSWER, FinishReason, RawResult, Usage
from tests.backends.line_edits import drop_at, set_at


def common_line() -> dict[str, Any]:
    """A results line as the emulator writes it (the real API's fields) for a text answer that succeeded."""
    params = {"model": "claude-haiku-4-5", "max_tokens": 64, "system": "Echo.",
              "messages": [{"role": "user", "content": "an answer"}]}
    return {"custom_id": "T-1", "result": message_result(params, seed="T-1", cache=CacheUse(creation=5, read=7))}


COMMON = orjson.dumps(common_line())


def reference(line: bytes) -> RawResult | None:
    """What the general way gives: exact JSON, the SDK's model, decode_result (None: blank, {} or broken)."""
    try:
        document = fast_json.loads(line)
    except ValueError:
        return None
    if type(document) is not dict or not document:
        return None
    try:
        return decode_result(construct_type_unchecked(value=document, type_=MessageBatchIndividualResponse))
    except (AttributeError, TypeError, ValueError, IndexError, KeyError):
        return RawResult(str(document.get("custom_id")), ok=False, error_code=UNREADABLE_ANSWER)


def assert_read_as_before(line: bytes) -> RawResult | None:
    answer, expected = read_results_line(line), reference(line)
    if expected is not None and expected.error_code == UNREADABLE_ANSWER:
        assert answer is not None and answer._replace(error_message=None) == expected
        return answer
    assert answer == expected
    if answer is not None and expected is not None:
        assert [type(field) for field in answer] == [type(field) for field in expected]
        assert [type(count) for count in answer.tokens] == [int, int, int]
    return answer




def _with(change: Callable[[dict[str, Any]], None]) -> bytes:
    line = common_line()
    change(line)
    return orjson.dumps(line)


def swap(old: bytes, new: bytes, line: bytes = COMMON) -> bytes:
    assert old in line
    return line.replace(old, new, 1)


MESSAGE = ("result", "message")
USAGE, CONTENT = (*MESSAGE, "usage"), (*MESSAGE, "content")
TOOL = {"type": "tool_use", "id": "toolu_1", "name": "Invoice", "input": {"vendor": "ACME", "total": 12.5}}
#: common lines: read by the typed decoder
COMMON_CASES: dict[str, Callable[[dict[str, Any]], None]] = {
    "as written": lambda line: None,
    "two text blocks": lambda line: line["result"]["message"]["content"].append({"type": "text", "text": " more"}),
    "no text block": set_at(CONTENT, []),
    "stopped at a sequence": lambda line: line["result"]["message"].update(stop_reason="stop_sequence",
                                                                           stop_sequence="###"),
    "stopped at max_tokens": set_at((*MESSAGE, "stop_reason"), "max_tokens"),
    "cache counts null": lambda line: line["result"]["message"]["usage"].update(
        cache_creation_input_tokens=None, cache_read_input_tokens=None),
    "cache counts absent": lambda line: [line["result"]["message"]["usage"].pop(name) for name in (
        "cache_creation_input_tokens", "cache_read_input_tokens", "cache_creation", "service_tier")],
    "server tool use and geo": lambda line: line["result"]["message"]["usage"].update(
        server_tool_use={"web_search_requests": 0, "web_fetch_requests": 0}, inference_geo="us",
        output_tokens_details={"thinking_tokens": 0}, speed="standard"),
    "citations null": set_at((*CONTENT, 0, "citations"), None),
    "stop details null": set_at((*MESSAGE, "stop_details"), None),
}
#: near misses: read the general way
NEAR_MISSES: dict[str, Callable[[dict[str, Any]], None]] = {
    "errored": set_at(("result",), {"type": "errored", "error": {"type": "error", "error": {
        "type": "overloaded_error", "message": "busy"}}}),
    "canceled": set_at(("result",), {"type": "canceled"}),
    "expired": set_at(("result",), {"type": "expired"}),
    "unknown result type": set_at(("result",), {"type": "postponed"}),
    "tool call": lambda line: line["result"]["message"].update(content=[TOOL], stop_reason="tool_use"),
    "text then tool call": lambda line: line["result"]["message"]["content"].append(TOOL),
    "tool call cut at max_tokens": lambda line: line["result"]["message"].update(
        content=[{**TOOL, "input": {}}], stop_reason="max_tokens"),
    "refusal": set_at((*MESSAGE, "stop_reason"), "refusal"),
    "refusal with details": lambda line: line["result"]["message"].update(
        stop_reason="refusal", stop_details={"type": "refusal", "category": "cyber", "explanation": None}),
    "pause_turn": set_at((*MESSAGE, "stop_reason"), "pause_turn"),
    "stop reason null": set_at((*MESSAGE, "stop_reason"), None),
    "thinking block": lambda line: line["result"]["message"]["content"].insert(0, {
        "type": "thinking", "thinking": "hmm", "signature": "sig"}),
    "citation": set_at((*CONTENT, 0, "citations"), [{"type": "char_location", "cited_text": "a",
                                                    "document_index": 0, "start_char_index": 0,
                                                    "end_char_index": 1, "document_title": None}]),
    "container": set_at((*MESSAGE, "container"), {"id": "c1", "expires_at": "2026-01-01T00:00:00Z"}),
    "unknown top-level field": set_at(("note",), {"a": [1, 2.5, None]}),
    "unknown message field": set_at((*MESSAGE, "context_management"), None),
    "unknown usage field": set_at((*USAGE, "cost"), 0.01),
    "unknown block field": set_at((*CONTENT, 0, "extra"), 1),
    "custom_id a number": set_at(("custom_id",), 17),
    "model a number": set_at((*MESSAGE, "model"), 4),
    "model null": set_at((*MESSAGE, "model"), None),
    "input tokens as text": set_at((*USAGE, "input_tokens"), "44"),
    "output tokens a float": set_at((*USAGE, "output_tokens"), 28.0),
    "input tokens a bool": set_at((*USAGE, "input_tokens"), True),
    "cache read a bool": set_at((*USAGE, "cache_read_input_tokens"), False),
    "text null": set_at((*CONTENT, 0, "text"), None),
    "content null": set_at(CONTENT, None),
    "message null": set_at((*MESSAGE,), None),
    "usage null": set_at(USAGE, None),
    "no usage": drop_at(USAGE),
    "no model": drop_at((*MESSAGE, "model")),
    "no custom_id": drop_at(("custom_id",)),
    "result null": set_at(("result",), None),
    "result a list": set_at(("result",), [1]),
    "two lines' worth": lambda line: line.update(extra=copy.deepcopy(line)),
}


@pytest.mark.parametrize("change", COMMON_CASES.values(), ids=list(COMMON_CASES))
def test_a_common_line_is_read_from_its_bytes_as_the_general_way_reads_it(
        change: Callable[[dict[str, Any]], None], monkeypatch: pytest.MonkeyPatch) -> None:
    line = _with(change)
    expected = reference(line)
    monkeypatch.setattr(anthropic_results, "results_object", lambda line: pytest.fail("went the general way"))
    answer = read_results_line(line)
    assert answer is not None and answer.ok and answer == expected and decode_common_line(line) == expected
    assert [type(field) for field in answer] == [type(field) for field in expected]  # type: ignore[union-attr]


def test_the_emulator_line_gives_its_text_model_usage_and_finish() -> None:
    usage = common_line()["result"]["message"]["usage"]
    assert usage["cache_creation_input_tokens"] == 5 and usage["cache_read_input_tokens"] == 7
    assert decode_common_line(COMMON) == RawResult(
        "T-1", True, "an answer", None, "claude-haiku-4-5", Usage(usage["input_tokens"] + 5 + 7,
                                                                  usage["output_tokens"], 7),
        finish_reason=FinishReason.STOP)


@pytest.mark.parametrize("change", NEAR_MISSES.values(), ids=list(NEAR_MISSES))
def test_a_near_miss_goes_the_general_way_and_gives_what_it_gives(change: Callable[[dict[str, Any]], None]) -> None:
    line = _with(change)
    assert decode_common_line(line) is None
    assert assert_read_as_before(line) is not None


def test_a_json_object_of_another_shape_fails_its_row_not_the_collect() -> None:
    answer = read_results_line(_with(set_at((*MESSAGE,), None)))
    assert answer is not None and not answer.ok and answer.custom_id == "T-1"
    assert answer.error_code == UNREADABLE_ANSWER and "unexpected shape" in (answer.error_message or "")


#: lines msgspec's types could read otherwise than orjson + the general decoder do
BYTE_CASES: dict[str, bytes] = {
    "input tokens 44.0": swap(b'"output_tokens":2', b'"output_tokens":2.0'),
    "input tokens -0": swap(b'"output_tokens":2', b'"output_tokens":-0'),
    "input tokens negative": swap(b'"output_tokens":2', b'"output_tokens":-2'),
    "output tokens 2**63-1": swap(b'"output_tokens":2', b'"output_tokens":9223372036854775807'),
    "output tokens 2**63": swap(b'"output_tokens":2', b'"output_tokens":9223372036854775808'),
    "output tokens 2**64": swap(b'"output_tokens":2', b'"output_tokens":18446744073709551616'),
    "output tokens 40 digits": swap(b'"output_tokens":2', b'"output_tokens":' + b"7" * 40),
    "cache tokens beyond 64 bits": swap(b'"ephemeral_1h_input_tokens":0', b'"ephemeral_1h_input_tokens":' + b"9" * 30),
    "duplicate custom_id": swap(b'"custom_id":"T-1"', b'"custom_id":"A","custom_id":"T-1"'),
    "duplicate custom_id, first wrong type": swap(b'"custom_id":"T-1"', b'"custom_id":5,"custom_id":"T-1"'),
    "duplicate text": swap(b'"text":"an answer"', b'"text":"first","text":"an answer"'),
    "duplicate text, last null": swap(b'"text":"an answer"', b'"text":"an answer","text":null'),
    "duplicate stop reason": swap(b'"stop_reason":"end_turn"', b'"stop_reason":"refusal","stop_reason":"end_turn"'),
    "duplicate stop reason, last refusal": swap(b'"stop_reason":"end_turn"',
                                                b'"stop_reason":"end_turn","stop_reason":"refusal"'),
    "duplicate result type": swap(b'"type":"succeeded"', b'"type":"errored","type":"succeeded"'),
    "duplicate tokens": swap(b'"output_tokens":2', b'"output_tokens":1,"output_tokens":2'),
    "escaped key": swap(b'"custom_id"', b'"\\u0063ustom_id"'),
    "escaped stop reason": swap(b'"end_turn"', b'"\\u0065nd_turn"'),
    "non-ASCII text": _with(set_at((*CONTENT, 0, "text"), "réponse 答え 😀")),
    "non-ASCII custom_id and model": swap(b'"T-1"', '"Ü-1"'.encode(), _with(set_at((*MESSAGE, "model"), "模型"))),
    "escaped non-ASCII": swap(b'"an answer"', b'"r\\u00e9ponse \\u7b54\\u3048"'),
    "escaped surrogate pair": swap(b'"an answer"', b'"smile \\ud83d\\ude00"'),
    "escapes": swap(b'"an answer"', b'"a\\"b\\\\c\\/d\\n\\t\\r\\b\\f"'),
    "very long text": _with(set_at((*CONTENT, 0, "text"), "long answer é " * 100_000)),
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
    "invalid UTF-8 in an unread field": swap(b'"service_tier":"batch"', b'"service_tier":"\xff\xfe"'),
    "overlong UTF-8 in an unread field": swap(b'"service_tier":"batch"', b'"service_tier":"\xc0\xaf"'),
    "invalid UTF-8 in the text": swap(b'"an answer"', b'"\xff"'),
    "lone surrogate escape": swap(b'"an answer"', b'"\\ud800"'),
    "1e400 in an unknown field": swap(b'{"custom_id"', b'{"extra":1e400,"custom_id"'),
    "NaN": swap(b'"output_tokens":2', b'"output_tokens":NaN'),
    "trailing garbage": COMMON + b" x",
    "two objects": COMMON + COMMON,
    "byte order mark": b"\xef\xbb\xbf" + COMMON,
    "raw control character": swap(b'"an answer"', b'"an\x01answer"'),
    "cut short": COMMON[:-1],
    "cut in half": COMMON[: len(COMMON) // 2],
}


@pytest.mark.parametrize("line", REFUSED.values(), ids=list(REFUSED))
def test_a_line_orjson_refuses_stays_broken(line: bytes) -> None:
    assert reference(line) is None and results_object(line) is None  # counted as broken by results()
    assert decode_common_line(line) is None and read_results_line(line) is None


@pytest.mark.parametrize("line", [b"", b"  \r", b"{}"])
def test_a_blank_line_gives_none_and_is_not_broken(line: bytes) -> None:
    assert read_results_line(line) is None and results_object(line) == {}


@pytest.mark.parametrize("line", [b"[1, 2]", b'"text"', b"null", b"{broken"])
def test_a_line_that_is_not_a_json_object_is_broken(line: bytes) -> None:
    assert read_results_line(line) is None and results_object(line) is None
