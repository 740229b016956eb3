"""request_params may not set what the operator sets itself (model, prompt, system prompt, row id)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.operators import LLMBatchOperator
from airflow_llm_batch.pipeline.request_params import check_request_params
from airflow_llm_batch.pipeline.types import Endpoint

REFUSED = [
    ("openai", "chat_completions", {"model": "gpt-4o"}),
    ("openai", "chat_completions", {"custom_id": "x"}),
    ("openai", "chat_completions", {"messages": []}),
    ("openai", "responses", {"input": "hi"}),
    ("openai", "responses", {"instructions": "be short"}),
    ("openai", "embeddings", {"input": "hi"}),
    ("azure_openai", "chat_completions", {"model": "my-deployment"}),
    ("anthropic", "chat_completions", {"model": "claude-opus-4-1"}),
    ("anthropic", "chat_completions", {"system": "you are"}),
    ("anthropic", "chat_completions", {"messages": []}),
    ("gemini", "chat_completions", {"contents": []}),
    ("gemini", "chat_completions", {"model": "gemini-2.5-pro"}),
    ("vertex", "chat_completions", {"systemInstruction": {}}),
]


@pytest.mark.parametrize(("provider", "endpoint", "params"), REFUSED)
def test_reserved_names_are_refused_when_the_operator_is_built(provider: str, endpoint: str,
                                                                params: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError, match=rf"request_params must not set \['{next(iter(params))}'\]"):
        LLMBatchOperator(task_id="t", provider=provider, endpoint=endpoint, model="m", rows=[{"id": 1}],
                         prompt="{{ row.id }}", request_params={"temperature": 0, **params})


def test_the_error_says_what_to_use_instead() -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_request_params("openai", Endpoint.CHAT, {"model": "gpt-4o", "custom_id": "c", "temperature": 0})
    message = str(caught.value)
    assert "['custom_id', 'model']" in message and "'model' -> use model=" in message
    assert "'custom_id' -> use key=" in message


def test_ordinary_params_pass() -> None:
    op = LLMBatchOperator(task_id="t", provider="anthropic", model="m", rows=[{"id": 1}], prompt="{{ row.id }}",
                          request_params={"max_tokens": 50, "temperature": 0, "top_k": 5})
    assert op.request_params == {"max_tokens": 50, "temperature": 0, "top_k": 5}
    check_request_params("openai", Endpoint.EMBEDDINGS, {"dimensions": 256})
    check_request_params("gemini", Endpoint.CHAT, {"max_output_tokens": 10})
