"""backends/openai.decode_output_line's fast path for the common line (a chat completion that succeeded):
it gives what the general decoder (decode_any_line) gives, for that line and for every near miss."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from airflow_llm_batch.backends import openai as openai_backend
from airflow_llm_batch.backends.openai import decode_any_line, decode_output_line, output_object
from airflow_llm_batch.pipeline.types import UNREADABLE_ANSWER, FinishReason, RawResult, Usage
from tests.backends.line_edits import drop_at, set_at


def common_line() -> dict[str, Any]:
    """An output line as the Batch API writes it for a chat completion that succeeded."""
    return {"id": "batch_req_1", "custom_id": "T-1", "error": None, "response": {
        "status_code": 200, "request_id": "r1", "body": {
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1790000000, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "an answer", "refusal": None,
                                                 "annotations": []}, "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 44, "completion_tokens": 28, "total_tokens": 72,
                      "prompt_tokens_details": {"cached_tokens": 3, "audio_tokens": 0}}}}}




BODY, CHOICE = ("response", "body"), ("response", "body", "choices", 0)
USAGE = (*BODY, "usage")
NEAR_MISSES: dict[str, Callable[[dict[str, Any]], None]] = {
    "batch error": set_at(("error",), {"code": "batch_expired", "message": "too late"}),
    "error key absent": drop_at(("error",)),
    "HTTP 429": set_at(("response", "status_code"), 429),
    "status as text": set_at(("response", "status_code"), "200"),
    "no response": set_at(("response",), None),
    "body empty": set_at(BODY, {}),
    "embeddings list": set_at((*BODY, "object"), "list"),
    "no object": drop_at((*BODY, "object")),
    "two choices": lambda line: line["response"]["body"]["choices"].append(copy.deepcopy(
        line["response"]["body"]["choices"][0])),
    "no choices": set_at((*BODY, "choices"), []),
    "choices null": set_at((*BODY, "choices"), None),
    "finish length": set_at((*CHOICE, "finish_reason"), "length"),
    "finish content_filter": set_at((*CHOICE, "finish_reason"), "content_filter"),
    "finish in capitals": set_at((*CHOICE, "finish_reason"), "STOP"),
    "no finish": drop_at((*CHOICE, "finish_reason")),
    "refusal": set_at((*CHOICE, "message", "refusal"), "I can't"),
    "empty refusal": set_at((*CHOICE, "message", "refusal"), ""),
    "no refusal key": drop_at((*CHOICE, "message", "refusal")),
    "content null": set_at((*CHOICE, "message", "content"), None),
    "content empty": set_at((*CHOICE, "message", "content"), ""),
    "content parts": set_at((*CHOICE, "message", "content"), [{"type": "text", "text": "x"}]),
    "no message": drop_at((*CHOICE, "message")),
    "custom_id a number": set_at(("custom_id",), 17),
    "no model": drop_at((*BODY, "model")),
    "prompt tokens as text": set_at((*USAGE, "prompt_tokens"), "44"),
    "completion tokens a float": set_at((*USAGE, "completion_tokens"), 28.0),
    "cached tokens a bool": set_at((*USAGE, "prompt_tokens_details", "cached_tokens"), True),
    "cached tokens null": set_at((*USAGE, "prompt_tokens_details", "cached_tokens"), None),
    "no details": drop_at((*USAGE, "prompt_tokens_details")),
    "details null": set_at((*USAGE, "prompt_tokens_details"), None),
    "no usage": drop_at(USAGE),
    "usage null": set_at(USAGE, None),
}


def test_the_common_line_decodes_to_its_answer_without_the_general_decoder(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def general(line: dict[str, Any]) -> RawResult:
        raise AssertionError("the common line went to the general decoder")

    monkeypatch.setattr(openai_backend, "decode_any_line", general)
    answer = decode_output_line(common_line())
    assert answer == RawResult("T-1", True, "an answer", None, "gpt-4o-mini", Usage(44, 28, 3),
                               finish_reason=FinishReason.STOP)
    assert type(answer) is RawResult and answer.finish_reason is FinishReason.STOP
    assert answer.usage == Usage(44, 28, 3) and type(answer.tokens) is tuple


def test_the_common_line_read_from_bytes_gives_what_the_general_decoder_gives() -> None:
    document = output_object(orjson.dumps(common_line()))
    assert document is not None
    assert decode_output_line(document) == decode_any_line(copy.deepcopy(document))


@pytest.mark.parametrize("change", NEAR_MISSES.values(), ids=list(NEAR_MISSES))
def test_a_near_miss_gives_what_the_general_decoder_gives(change: Callable[[dict[str, Any]], None]) -> None:
    line = common_line()
    change(line)
    fast, general = decode_output_line(line), decode_any_line(line)
    assert fast == general
    assert [type(field) for field in fast] == [type(field) for field in general]
    assert [type(count) for count in fast.tokens] == [int, int, int]


@pytest.mark.parametrize(("line", "expected"), [
    (b"", {}), (b"  \r", {}), (b"{broken", None), (b"[1, 2]", None), (b'"text"', None), (b"{}", {}),
    (b'{"custom_id": "a"}', {"custom_id": "a"}),
])
def test_output_object_reads_a_line_or_says_it_is_blank_or_broken(line: bytes, expected: Any) -> None:
    assert output_object(line) == expected


@pytest.mark.parametrize("change", [
    set_at((*BODY, "choices"), [None]),
    set_at((*CHOICE, "message"), "an answer as a string"),
    set_at(BODY, ["not", "an", "object"]),
    set_at(("error",), "a string error"),
    set_at((*USAGE, "prompt_tokens"), "many"),
    set_at(USAGE, 42),
], ids=["choice null", "message a string", "body a list", "error a string", "tokens not a number",
        "usage a number"])
def test_a_line_of_an_unexpected_shape_fails_its_row_with_a_reason(change: Callable[[dict[str, Any]], None]) -> None:
    """JSON, but of no shape the decoder knows: the row fails as ``unreadable_answer`` (not retried: it may
    have been paid), instead of the error stopping the whole collect."""
    line = common_line()
    change(line)
    answer = decode_output_line(line)
    assert answer.custom_id == "T-1" and not answer.ok
    assert answer.error_code == UNREADABLE_ANSWER and "unexpected shape" in (answer.error_message or "")
