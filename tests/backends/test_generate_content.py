"""The same GenerateContent answer decodes to the same RawResult whether the Gemini (Developer API)
backend or the Vertex AI backend read it: one code per situation, one neutral finish reason, the
same usage."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_llm_batch.backends import gemini, vertex
from airflow_llm_batch.pipeline.types import FinishReason, RawResult, Usage

USAGE = {"promptTokenCount": 10, "candidatesTokenCount": 3, "thoughtsTokenCount": 2,
         "cachedContentTokenCount": "4", "totalTokenCount": 15}


def candidate(text: str, finish: str, **extra: Any) -> dict[str, Any]:
    return {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": finish, **extra}


#: (case, GenerateContentResponse or google.rpc.Status, expected (ok, error_code, finish_reason, usage))
CASES: list[tuple[str, dict[str, Any], tuple[bool, str | None, FinishReason | None, Usage]]] = [
    ("stop", {"candidates": [candidate("fine", "STOP")], "usageMetadata": USAGE, "modelVersion": "gemini-2.5-flash"},
     (True, None, FinishReason.STOP, Usage(10, 5, 4))),
    ("prompt blocked", {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                        "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}},
     (False, "prompt_blocked", None, Usage(7, 0, 0))),
    ("answer withheld", {"candidates": [{"finishReason": "SAFETY", "safetyRatings": [
        {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True}]}], "usageMetadata": USAGE},
     (False, "content_filter", FinishReason.CONTENT_FILTER, Usage(10, 5, 4))),
    ("recitation", {"candidates": [candidate("partial", "RECITATION")], "usageMetadata": USAGE},
     (False, "content_filter", FinishReason.CONTENT_FILTER, Usage(10, 5, 4))),
    ("max tokens", {"candidates": [candidate('{"x": ', "MAX_TOKENS")], "usageMetadata": USAGE},
     (True, None, FinishReason.LENGTH, Usage(10, 5, 4))),
    ("tool use", {"candidates": [{"content": {"role": "model", "parts": [
        {"text": "done"}, {"functionCall": {"name": "lookup", "args": {"q": "x"}}}]}, "finishReason": "STOP"}],
        "usageMetadata": {**USAGE, "toolUsePromptTokenCount": 6}},
     (True, None, FinishReason.STOP, Usage(16, 5, 4))),
    ("other finish", {"candidates": [candidate("", "MALFORMED_FUNCTION_CALL")], "usageMetadata": USAGE},
     (True, None, FinishReason.OTHER, Usage(10, 5, 4))),
    ("no candidate", {"usageMetadata": {"promptTokenCount": 3}}, (False, "missing_result", None, Usage(3, 0, 0))),
]
#: (case, google.rpc.Status as the Developer API writes it, HTTP status, expected error code)
ERRORS: list[tuple[str, dict[str, Any], int, str]] = [
    ("failed precondition", {"code": 9, "message": "billing is not enabled", "status": "FAILED_PRECONDITION"}, 400,
     "invalid_request_error"),
    ("already exists", {"code": 6, "message": "dup", "status": "ALREADY_EXISTS"}, 409, "invalid_request_error"),
    ("unimplemented", {"code": 12, "message": "no", "status": "UNIMPLEMENTED"}, 501, "invalid_request_error"),
    ("resource exhausted", {"code": 8, "message": "quota", "status": "RESOURCE_EXHAUSTED"}, 429,
     "rate_limit_exceeded"),
    ("unavailable", {"code": 14, "message": "busy", "status": "UNAVAILABLE"}, 503, "service_unavailable"),
]


def through_gemini(response: dict[str, Any]) -> tuple[RawResult, RawResult]:
    """An inline response (joined on metadata.key) and a responses-file line (joined on key)."""
    inline = gemini.decode_answer("k", {"metadata": {"key": "k"}, "response": response})
    line = gemini.decode_answer("k", json.loads(json.dumps({"key": "k", "response": response})))
    return inline, line


def through_vertex(response: dict[str, Any]) -> tuple[RawResult | None, RawResult | None]:
    """A predictions.jsonl record, and a BigQuery output row whose JSON column came back as text."""
    gcs = vertex.decode_prediction({"key": "k", "request": {}, "status": "", "response": response})
    bigquery = vertex.decode_prediction({"key": "k", "request": "{}", "status": None, "response": json.dumps(response)})
    return gcs, bigquery


def outcome(answer: RawResult | None) -> tuple[bool, str | None, FinishReason | None, Usage]:
    assert answer is not None
    return answer.ok, answer.error_code, answer.finish_reason, answer.usage


@pytest.mark.parametrize(("response", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_gemini_and_vertex_decode_the_same_answer_the_same_way(
        response: dict[str, Any], expected: tuple[bool, str | None, FinishReason | None, Usage]) -> None:
    answers = [*through_gemini(response), *through_vertex(response)]
    assert [outcome(answer) for answer in answers] == [expected] * 4
    assert len({(a.text if a else None, a.model if a else None) for a in answers}) == 1


@pytest.mark.parametrize(("status", "http", "code"), [case[1:] for case in ERRORS], ids=[case[0] for case in ERRORS])
def test_gemini_and_vertex_map_the_same_google_status_to_the_same_code(status: dict[str, Any], http: int,
                                                                        code: str) -> None:
    numeric = {"code": status["code"], "message": status["message"]}  # a Developer API row: gRPC number
    text = f"Error: {json.dumps({'error': {**status, 'code': http}})}"  # a Vertex row: HTTP code + name
    answers = [gemini.decode_answer("k", {"metadata": {"key": "k"}, "error": numeric}),
               gemini.decode_answer("k", {"key": "k", "error": status}),
               vertex.decode_prediction({"key": "k", "status": text})]
    assert [(a.ok, a.error_code) for a in answers if a is not None] == [(False, code)] * 3
    assert all(status["status"] in (a.error_message or "") and status["message"] in (a.error_message or "")
               for a in answers if a is not None)


def test_an_answer_in_snake_case_fields_decodes_as_its_camel_case_twin() -> None:
    """Field names are looked up in camelCase, then in snake_case (the spelling is worked out once per name)."""
    from airflow_llm_batch.backends.generate_content import decode_answer, field

    camel = {"response": {"candidates": [{"content": {"parts": [{"text": "hi"}]}, "finishReason": "MAX_TOKENS"}],
                          "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": "3",
                                            "thoughtsTokenCount": 2, "cachedContentTokenCount": 1},
                          "modelVersion": "gemini-x"}}
    snake = {"response": {"candidates": [{"content": {"parts": [{"text": "hi"}]}, "finish_reason": "MAX_TOKENS"}],
                          "usage_metadata": {"prompt_token_count": 5, "candidates_token_count": "3",
                                             "thoughts_token_count": 2, "cached_content_token_count": 1},
                          "model_version": "gemini-x"}}
    expected = RawResult("k", True, "hi", model="gemini-x", usage=Usage(5, 5, 1), finish_reason=FinishReason.LENGTH)
    for _ in range(2):  # the second time the snake_case spellings are the kept ones
        assert decode_answer("k", camel) == expected
        assert decode_answer("k", snake) == expected
    assert field({"tool_use_prompt_token_count": 4}, "toolUsePromptTokenCount") == 4
    assert field({"a": 1}, "toolUsePromptTokenCount") is None
