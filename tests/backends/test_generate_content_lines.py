"""backends/generate_content_lines.decode_common_line: a Gemini responses file line read from its bytes
gives what json_object + decode_answer give (the common line, every near miss); any line that is not
the common one is left to them (None), a broken one included."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from airflow_llm_batch.backends import gemini as gemini_backend
from airflow_llm_batch.backends.generate_content import decode_answer
from airflow_llm_batch.backends.generate_content_lines import decode_common_line
from airflow_llm_batch.backends.json_lines import json_object
from airflow_llm_batch.pipeline.types import FinishReason, RawResult
from tests.backends.line_edits import drop_at, set_at
from tests.backends.test_gemini_backend import answers, connect, finish, fresh_emulator, texts, write_chunk

__all__ = ["fresh_emulator"]  # the emulator fixture, shared


def common_line() -> dict[str, Any]:
    """A responses file line as the Gemini Developer API writes it for a text answer."""
    return {"key": "k-1", "response": {
        "candidates": [{"content": {"parts": [{"text": "an answer"}], "role": "model"}, "finishReason": "STOP",
                        "index": 0, "avgLogprobs": -0.25}],
        "usageMetadata": {"promptTokenCount": 44, "candidatesTokenCount": 28, "totalTokenCount": 72,
                          "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 44}]},
        "modelVersion": "gemini-2.5-flash", "responseId": "r-1"}}


def reference(line: bytes) -> RawResult | None:
    """What the line gave before (None: broken or keyless)."""
    document = json_object(line)
    return None if document is None or document.get("key") is None else decode_answer(str(document["key"]), document)


def assert_as_before(line: bytes) -> RawResult | None:
    fast, expected = decode_common_line(line), reference(line)
    if fast is not None:  # None: the caller reads the line the general way
        assert expected is not None and fast == expected
        assert [type(field) for field in fast] == [type(field) for field in expected]
        assert [type(count) for count in fast.tokens] == [int, int, int]
    return fast


def test_the_common_line_is_read_from_its_bytes() -> None:
    line = orjson.dumps(common_line())
    answer = assert_as_before(line)
    assert answer == RawResult("k-1", True, "an answer", None, "gemini-2.5-flash", (44, 28, 0),
                               finish_reason=FinishReason.STOP)
    assert answer is not None and type(answer) is RawResult and type(answer.tokens) is tuple




CAND, USAGE, PARTS = ("response", "candidates", 0), ("response", "usageMetadata"), \
    ("response", "candidates", 0, "content", "parts")
#: (change, whether the fast path still reads the line)
CHANGES: dict[str, tuple[Callable[[dict[str, Any]], None], bool]] = {
    "as written": (lambda line: None, True),
    "thoughts": (set_at(PARTS, [{"text": "hmm", "thought": True, "thoughtSignature": "s"}, {"text": "4"}]), True),
    "thought false": (set_at(PARTS, [{"text": "a", "thought": False}, {"text": "b"}]), True),
    "thought as text": (set_at(PARTS, [{"text": "a", "thought": "yes"}]), False),
    "no parts text": (set_at(PARTS, [{"thoughtSignature": "s"}]), True),
    "part text null": (set_at(PARTS, [{"text": None}, {"text": "b"}]), True),
    "part text a number": (set_at(PARTS, [{"text": 4}]), False),
    "a function call": (set_at(PARTS, [{"functionCall": {"name": "f", "args": {}}}]), False),
    "max tokens": (set_at((*CAND, "finishReason"), "MAX_TOKENS"), True),
    "safety": (set_at((*CAND, "finishReason"), "SAFETY"), False),
    "stop in lower case": (set_at((*CAND, "finishReason"), "stop"), False),
    "no finish reason": (drop_at((*CAND, "finishReason")), False),
    "no candidates": (set_at(("response", "candidates"), []), False),
    "two candidates": (lambda line: line["response"]["candidates"].append(
        copy.deepcopy(line["response"]["candidates"][0])), True),
    "blocked prompt": (set_at(("response",), {"promptFeedback": {"blockReason": "SAFETY"}}), False),
    "error": (set_at(("error",), {"code": 14, "message": "busy"}), False),
    "error null": (set_at(("error",), None), True),
    "status empty text": (set_at(("status",), ""), False),
    "key a number": (set_at(("key",), 7), False),
    "no usage": (drop_at(USAGE), True),
    "usage null": (set_at(USAGE, None), True),
    "every count": (set_at(USAGE, {"promptTokenCount": 44, "candidatesTokenCount": 28, "thoughtsTokenCount": 9,
                                 "cachedContentTokenCount": 5, "toolUsePromptTokenCount": 3,
                                 "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 5}]}), True),
    "count as text": (set_at((*USAGE, "promptTokenCount"), "44"), False),
    "count a float": (set_at((*USAGE, "promptTokenCount"), 44.0), False),
    "count a bool": (set_at((*USAGE, "candidatesTokenCount"), True), False),
    "count null": (set_at((*USAGE, "candidatesTokenCount"), None), True),
    "count beyond int64": (set_at((*USAGE, "promptTokenCount"), 2**63), False),
    "snake case count": (set_at((*USAGE, "prompt_token_count"), 4), False),
    "snake case model": (set_at(("response", "model_version"), "m"), False),
    "no model": (drop_at(("response", "modelVersion")), True),
    "model null": (set_at(("response", "modelVersion"), None), True),
    "unknown field": (set_at((*CAND, "safetyRatings"), [{"category": "x", "probability": "NEGLIGIBLE"}]), False),
    "non-ASCII": (set_at(PARTS, [{"text": "réponse 答え 😀"}]), True),
    "long text": (set_at(PARTS, [{"text": "é long " * 50_000}]), True),
}


@pytest.mark.parametrize(("change", "fast"), CHANGES.values(), ids=list(CHANGES))
def test_a_line_gives_what_the_general_decoder_gives(change: Callable[[dict[str, Any]], None], fast: bool) -> None:
    line = common_line()
    change(line)
    assert (assert_as_before(orjson.dumps(line)) is not None) is fast


COMMON = orjson.dumps(common_line())
#: raw lines: (line, whether the fast path reads it); a broken one (json_object gives None) never is
RAW: dict[str, tuple[bytes, bool]] = {
    "duplicate key, last wins": (COMMON.replace(b'"key":"k-1"', b'"key":"x","key":"k-1"'), True),
    "duplicate finish, last wins": (COMMON.replace(b'"finishReason":"STOP"',
                                                   b'"finishReason":"MAX_TOKENS","finishReason":"STOP"'), True),
    "duplicate finish, first not common": (COMMON.replace(b'"finishReason":"STOP"',
                                                          b'"finishReason":"SAFETY","finishReason":"STOP"'), False),
    "escaped surrogate pair": (COMMON.replace(b'"an answer"', b'"\\ud83d\\ude00 \\u00e9"'), True),
    "1e400 log probability": (COMMON.replace(b"-0.25", b"-1e400"), False),
    "invalid UTF-8": (COMMON.replace(b'"r-1"', b'"\xff"'), False),
    "lone surrogate": (COMMON.replace(b'"an answer"', b'"\\ud800"'), False),
    "cut short": (COMMON[:-1], False),
    "count beyond 64 bits": (COMMON.replace(b'"promptTokenCount":44', b'"promptTokenCount":' + b"9" * 30), False),
    "19 digits": (COMMON.replace(b'"totalTokenCount":72', b'"totalTokenCount":1234567890123456789'), True),
}


@pytest.mark.parametrize(("line", "fast"), RAW.values(), ids=list(RAW))
def test_a_raw_line_gives_what_the_general_way_gives(line: bytes, fast: bool) -> None:
    assert (assert_as_before(line) is not None) is fast


@pytest.mark.parametrize("line", [b"{}", b"[]", b"x", b"", b'{"key": "k"}'])
def test_a_line_without_an_answer_is_left_to_the_general_way(line: bytes) -> None:
    assert decode_common_line(line) is None


async def test_a_responses_file_is_read_from_its_bytes(monkeypatch: pytest.MonkeyPatch, fresh_emulator: Any,
                                                       tmp_path: Path) -> None:
    backend = connect(fresh_emulator, inline_max_bytes=100)  # a responses file, not inline answers
    try:
        name = await backend.submit(write_chunk(backend, tmp_path, texts(5)), 5, {"llm_batch_tag": "t-l"})
        await finish(backend, name)
        general = await answers(backend, name)
        monkeypatch.setattr(gemini_backend, "json_object", functools.partial(pytest.fail, "went the general way"))
        fast = await answers(backend, name)
    finally:
        await backend.aclose()
    assert fast == general and len(fast) == 5 and all(answer.ok and answer.text for answer in fast)
