"""One GenerateContent translator for Gemini and Vertex AI: the same shape, the differences as data."""

from __future__ import annotations

import pytest

from airflow_llm_batch.backends.gemini_request import GEMINI
from airflow_llm_batch.backends.generate_content_request import Dialect, generate_content_request
from airflow_llm_batch.backends.json_lines import json_object
from airflow_llm_batch.backends.vertex_request import VERTEX
from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.pipeline.types import Endpoint, LLMRequest

SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}}


def request(**overrides: object) -> LLMRequest:
    fields: dict[str, object] = {"custom_id": "k1", "key": "k1", "model": "gemini-2.5-flash",
                                 "endpoint": Endpoint.CHAT, "prompt": "hello",
                                 "system_prompt": "be brief", "params": {"temperature": 0.2}}
    return LLMRequest(**{**fields, **overrides})  # type: ignore[arg-type]


@pytest.mark.parametrize("dialect", [GEMINI, VERTEX], ids=["gemini", "vertex"])
def test_both_apis_get_the_same_request_shape(dialect: Dialect) -> None:
    body = generate_content_request(request(response_schema=SCHEMA, params={"temperature": 0.2,
                                                                             "safety_settings": []}), dialect)
    assert body["contents"] == [{"role": "user", "parts": [{"text": "hello"}]}]
    assert body["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert body["generationConfig"] == {"temperature": 0.2, "responseMimeType": "application/json",
                                        "responseJsonSchema": SCHEMA}
    assert body["safetySettings"] == []
    json_only = generate_content_request(request(json_output=True, system_prompt=None, params={}), dialect)
    assert json_only["generationConfig"] == {"responseMimeType": "application/json"}
    assert "systemInstruction" not in json_only
    assert "generationConfig" not in generate_content_request(request(params={}), dialect)
    with pytest.raises(InvalidInputError, match="generateContent only, not embeddings"):
        generate_content_request(request(endpoint=Endpoint.EMBEDDINGS), dialect)


def test_what_differs_is_data() -> None:
    assert generate_content_request(request(), GEMINI)["model"] == "models/gemini-2.5-flash"
    assert "model" not in generate_content_request(request(), VERTEX)
    assert Endpoint.RESPONSES in VERTEX.endpoints and Endpoint.RESPONSES not in GEMINI.endpoints
    assert generate_content_request(request(params={"max_tokens": 5}), GEMINI)["generationConfig"] == {
        "maxOutputTokens": 5}
    assert generate_content_request(request(params={"max_tokens": 5}), VERTEX)["generationConfig"] == {
        "maxOutputTokens": 5}
    with pytest.raises(InvalidInputError, match="not a Gemini generateContent parameter"):
        generate_content_request(request(params={"logit_bias": {}}), GEMINI)
    with pytest.raises(InvalidInputError, match=r"\['logit_bias'\] are not GenerateContentRequest fields"):
        generate_content_request(request(params={"logit_bias": {}}), VERTEX)


def test_json_object_reads_one_object_per_line_and_never_raises() -> None:
    assert json_object(b'{"key": "a"}\n') == {"key": "a"}
    assert json_object('{"key": "a"}') == {"key": "a"}
    assert json_object(b"{broken") is None and json_object(b"[1, 2]") is None and json_object(b"3") is None
