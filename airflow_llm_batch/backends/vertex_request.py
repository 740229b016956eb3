"""Vertex AI request translation: the neutral `LLMRequest` -> a ``GenerateContentRequest`` (the
``request`` of a batch prediction input line). ``request_params`` go into ``generationConfig``
(OpenAI spellings such as ``max_tokens`` are translated, see :data:`GENERATION_PARAMS`) or, for
``safety_settings``, ``tools``, ``tool_config``, ``labels``, ``cached_content``, the request itself;
any other name is refused before anything is paid."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.pipeline.types import Endpoint, LLMRequest

#: request_params names -> generationConfig field (OpenAI spellings accepted where they mean the same)
GENERATION_PARAMS: dict[str, str] = {
    "temperature": "temperature", "top_p": "topP", "topP": "topP", "top_k": "topK", "topK": "topK",
    "max_tokens": "maxOutputTokens", "max_completion_tokens": "maxOutputTokens",
    "max_output_tokens": "maxOutputTokens", "maxOutputTokens": "maxOutputTokens",
    "stop": "stopSequences", "stop_sequences": "stopSequences", "stopSequences": "stopSequences",
    "seed": "seed", "presence_penalty": "presencePenalty", "presencePenalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty", "frequencyPenalty": "frequencyPenalty",
    "candidate_count": "candidateCount", "candidateCount": "candidateCount",
    "response_logprobs": "responseLogprobs", "responseLogprobs": "responseLogprobs", "logprobs": "logprobs",
    "thinking_config": "thinkingConfig", "thinkingConfig": "thinkingConfig",
    "media_resolution": "mediaResolution", "mediaResolution": "mediaResolution",
}
#: request_params names -> top-level GenerateContentRequest field
REQUEST_PARAMS: dict[str, str] = {
    "safety_settings": "safetySettings", "safetySettings": "safetySettings", "tools": "tools",
    "tool_config": "toolConfig", "toolConfig": "toolConfig", "labels": "labels",
    "cached_content": "cachedContent", "cachedContent": "cachedContent",
}
_GENERATION_CONFIG = ("generation_config", "generationConfig")


def generate_content_request(request: LLMRequest) -> dict[str, Any]:
    """The ``GenerateContentRequest`` of one row."""
    if request.endpoint == Endpoint.EMBEDDINGS:
        raise InvalidInputError("Vertex batch prediction here runs generateContent only, not embeddings; "
                                "use endpoint='chat_completions'")
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": request.prompt}]}]}
    if request.system_prompt:
        body["systemInstruction"] = {"parts": [{"text": request.system_prompt}]}
    generation: dict[str, Any] = {}
    unknown: list[str] = []
    for name, value in request.params.items():
        if name in GENERATION_PARAMS:
            generation[GENERATION_PARAMS[name]] = value
        elif name in REQUEST_PARAMS:
            body[REQUEST_PARAMS[name]] = value
        elif name in _GENERATION_CONFIG and isinstance(value, Mapping):
            generation.update(value)
        else:
            unknown.append(name)
    if unknown:
        raise InvalidInputError(f"request_params {sorted(unknown)} are not GenerateContentRequest fields; "
                                f"use generationConfig names ({', '.join(sorted(set(GENERATION_PARAMS.values())))})"
                                f", or {sorted(set(REQUEST_PARAMS.values()))}")
    if request.response_schema is not None:
        generation.update(responseMimeType="application/json", responseJsonSchema=request.response_schema)
    elif request.json_output:
        generation["responseMimeType"] = "application/json"
    if generation:
        body["generationConfig"] = generation
    return body
