"""OpenAI (and Azure OpenAI) answers use the same neutral finish reasons and error codes as the other
providers: a filtered answer fails as ``content_filter``, a blocked prompt as ``prompt_blocked``."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_llm_batch.backends.openai import decode_output_line
from airflow_llm_batch.pipeline.types import FinishReason


def chat_line(finish: str, content: str | None = "hi") -> dict[str, Any]:
    body = {"model": "gpt-4o-mini", "usage": {"prompt_tokens": 5, "completion_tokens": 2},
            "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": content}}]}
    return {"custom_id": "r1", "response": {"status_code": 200, "body": body}}


def responses_line(reason: str) -> dict[str, Any]:
    body = {"model": "gpt-4o-mini", "status": "incomplete", "incomplete_details": {"reason": reason},
            "usage": {"input_tokens": 5, "output_tokens": 2},
            "output": [{"type": "message", "content": [{"type": "output_text", "text": "par"}]}]}
    return {"custom_id": "r1", "response": {"status_code": 200, "body": body}}


@pytest.mark.parametrize(("word", "neutral"), [("stop", FinishReason.STOP), ("length", FinishReason.LENGTH),
                                               ("tool_calls", FinishReason.TOOL_USE),
                                               ("function_call", FinishReason.TOOL_USE)])
def test_chat_finish_words_map_to_the_neutral_reason(word: str, neutral: FinishReason) -> None:
    answer = decode_output_line(chat_line(word))
    assert answer.ok and answer.finish_reason is neutral


def test_a_filtered_answer_fails_as_content_filter_in_both_apis() -> None:
    chat = decode_output_line(chat_line("content_filter", content=None))
    responses = decode_output_line(responses_line("content_filter"))
    assert [(a.ok, a.error_code, a.finish_reason) for a in (chat, responses)] == [
        (False, "content_filter", FinishReason.CONTENT_FILTER)] * 2
    assert responses.text == "par" and chat.usage.input_tokens == 5


def test_a_cut_responses_answer_is_length() -> None:
    answer = decode_output_line(responses_line("max_output_tokens"))
    assert answer.ok and answer.finish_reason is FinishReason.LENGTH


def test_azure_refusing_a_prompt_with_its_content_filter_is_prompt_blocked() -> None:
    body = {"error": {"code": "content_filter", "status": 400, "message": "The response was filtered",
                      "innererror": {"code": "ResponsibleAIPolicyViolation"}}}
    answer = decode_output_line({"custom_id": "r1", "response": {"status_code": 400, "body": body}})
    assert (answer.ok, answer.error_code) == (False, "prompt_blocked")
