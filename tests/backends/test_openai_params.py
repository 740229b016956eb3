"""max_tokens under the name each OpenAI endpoint and model accepts, in the request lines we build."""

from __future__ import annotations

from typing import Any

import pytest
from openai import AsyncOpenAI

from airflow_llm_batch.backends.openai import OpenAIBatchBackend
from airflow_llm_batch.pipeline.types import Endpoint, LLMRequest


def body(model: str, endpoint: Endpoint, **params: Any) -> dict[str, Any]:
    backend = OpenAIBatchBackend(AsyncOpenAI(api_key="k", base_url="http://127.0.0.1:9/v1"))
    request = LLMRequest(custom_id="r1", key="r1", model=model, endpoint=endpoint, prompt="hi", params=params)
    return backend.request_body(request)


@pytest.mark.parametrize("model", ["o1", "o3-mini", "o4-mini-2025-04-16", "gpt-5", "gpt-5-mini", "ft:o4-mini:acme:x"])
def test_reasoning_and_gpt5_chat_models_get_max_completion_tokens(model: str) -> None:
    sent = body(model, Endpoint.CHAT, max_tokens=64, temperature=1)
    assert sent["max_completion_tokens"] == 64 and "max_tokens" not in sent and sent["temperature"] == 1


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-4.1", "my-azure-deployment"])
def test_other_chat_models_keep_max_tokens_as_written(model: str) -> None:
    sent = body(model, Endpoint.CHAT, max_tokens=64)
    assert sent["max_tokens"] == 64 and "max_completion_tokens" not in sent


def test_the_responses_api_gets_max_output_tokens() -> None:
    sent = body("gpt-4o-mini", Endpoint.RESPONSES, max_tokens=64)
    assert sent["max_output_tokens"] == 64 and "max_tokens" not in sent


def test_an_explicit_name_wins_over_the_translated_one() -> None:
    sent = body("o3", Endpoint.CHAT, max_tokens=64, max_completion_tokens=500)
    assert sent["max_completion_tokens"] == 500 and "max_tokens" not in sent
