"""Vertex AI request translation: the neutral `LLMRequest` -> a ``GenerateContentRequest`` (the
``request`` of a batch prediction input line), the shared translator of
:mod:`airflow_llm_batch.backends.generate_content_request` in the :data:`VERTEX` dialect.
``request_params`` go into ``generationConfig``
(OpenAI spellings such as ``max_tokens`` are translated, see :data:`GENERATION_PARAMS`) or, for
``safety_settings``, ``tools``, ``tool_config``, ``labels``, ``cached_content``, the request itself;
any other name is refused before anything is paid."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_llm_batch.backends.generate_content_request import Dialect
from airflow_llm_batch.backends.generate_content_request import generate_content_request as generate_content
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


def read_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Request params -> (``generationConfig`` fields, request-level fields), through the tables above."""
    generation: dict[str, Any] = {}
    request_level: dict[str, Any] = {}
    unknown = sorted(name for name in params if name not in GENERATION_PARAMS and name not in REQUEST_PARAMS
                     and not (name in _GENERATION_CONFIG and isinstance(params[name], Mapping)))
    if unknown:
        raise InvalidInputError(f"request_params {unknown} are not GenerateContentRequest fields; "
                                f"use generationConfig names ({', '.join(sorted(set(GENERATION_PARAMS.values())))})"
                                f", or {sorted(set(REQUEST_PARAMS.values()))}")
    for name, value in params.items():
        if name in _GENERATION_CONFIG:
            generation.update(value)
        elif name in GENERATION_PARAMS:
            generation[GENERATION_PARAMS[name]] = value
        else:
            request_level[REQUEST_PARAMS[name]] = value
    return generation, request_level


VERTEX = Dialect("Vertex batch prediction", frozenset({Endpoint.CHAT, Endpoint.RESPONSES}), read_params)


def generate_content_request(request: LLMRequest) -> dict[str, Any]:
    """The ``GenerateContentRequest`` of one row."""
    return generate_content(request, VERTEX)
