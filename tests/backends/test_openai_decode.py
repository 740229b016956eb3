"""backends/openai.decode_output_line on chat completions: every shape of a chat line, including the
common one it takes first (finish ``stop``), gives the answer the provider meant."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_llm_batch.backends.openai import decode_output_line
from airflow_llm_batch.pipeline.types import FinishReason, RawResult, Usage


def chat(choices: Any, usage: Any = None, **body: Any) -> dict[str, Any]:
    usage = {"prompt_tokens": 9, "completion_tokens": 4} if usage is None else usage
    return {"custom_id": "c1", "response": {"status_code": 200, "body": {"model": "m", "usage": usage,
                                                                          "choices": choices, **body}}}


def choice(finish: Any = "stop", content: Any = "hello", refusal: Any = None) -> list[dict[str, Any]]:
    return [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": content,
                                                              "refusal": refusal}}]


USE = Usage(9, 4, 0)
CASES = [
    (chat(choice()), RawResult("c1", True, "hello", None, "m", USE, finish_reason=FinishReason.STOP)),
    (chat(choice("length", "cut")), RawResult("c1", True, "cut", model="m", usage=USE,
                                              finish_reason=FinishReason.LENGTH)),
    (chat(choice(" STOP ")), RawResult("c1", True, "hello", model="m", usage=USE, finish_reason=FinishReason.STOP)),
    (chat(choice("new_word")), RawResult("c1", True, "hello", model="m", usage=USE,
                                         finish_reason=FinishReason.OTHER)),
    (chat(choice(None)), RawResult("c1", True, "hello", model="m", usage=USE)),
    (chat(choice(FinishReason.LENGTH)), RawResult("c1", True, "hello", model="m", usage=USE,
                                                  finish_reason=FinishReason.LENGTH)),
    (chat(choice("stop", None)), RawResult("c1", True, None, model="m", usage=USE, finish_reason=FinishReason.STOP)),
    (chat(choice("content_filter", "")), RawResult("c1", False, None, model="m", usage=USE,
                                                   error_code="content_filter",
                                                   error_message="the content filter withheld the answer",
                                                   finish_reason=FinishReason.CONTENT_FILTER)),
    (chat(choice("stop", None, "I can't")), RawResult("c1", False, model="m", usage=USE, error_code="refusal",
                                                      error_message="I can't")),
    (chat([]), RawResult("c1", True, None, model="m", usage=USE)),
    (chat(None), RawResult("c1", True, None, model="m", usage=USE)),
    (chat(choice(), {"prompt_tokens": 9, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 5}}),
     RawResult("c1", True, "hello", model="m", usage=Usage(9, 4, 5), finish_reason=FinishReason.STOP)),
    (chat(choice(), {"prompt_tokens": 9, "completion_tokens": 4, "prompt_tokens_details": None}),
     RawResult("c1", True, "hello", model="m", usage=USE, finish_reason=FinishReason.STOP)),
    (chat(choice(), {"prompt_tokens": "9", "completion_tokens": 4.0, "prompt_tokens_details": {}}),
     RawResult("c1", True, "hello", model="m", usage=USE, finish_reason=FinishReason.STOP)),
    (chat(choice(), {}), RawResult("c1", True, "hello", model="m", usage=Usage(), finish_reason=FinishReason.STOP)),
]


@pytest.mark.parametrize(("line", "expected"), CASES, ids=[str(i) for i in range(len(CASES))])
def test_a_chat_line_decodes_to_its_answer(line: dict[str, Any], expected: RawResult) -> None:
    assert decode_output_line(line) == expected


def test_an_embeddings_list_is_not_a_chat_answer_even_beside_choices() -> None:
    line = chat(choice(), object="list", data=[{"embedding": [0.5, 1.5]}])
    assert decode_output_line(line) == RawResult("c1", True, embedding=[0.5, 1.5], model="m", usage=Usage(9, 0))
