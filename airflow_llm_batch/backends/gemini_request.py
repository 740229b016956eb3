"""Gemini Developer API request translation, from the neutral `LLMRequest` to a
``GenerateContentRequest`` (wire JSON), and the inline form of a chunk line.

Request translation (from the neutral `LLMRequest`): the shared translator of
:mod:`airflow_llm_batch.backends.generate_content_request` in the :data:`GEMINI` dialect.
    * The model -> ``request.model`` (``models/...``), so a chunk file names its model.
    * Request params are ``GenerateContentConfig`` fields, snake_case or camelCase
      (``temperature``, ``max_output_tokens``, ``top_p``, ``thinking_config``, ``safety_settings``...),
      plus the OpenAI spellings ``max_tokens``/``max_completion_tokens``, ``stop`` and ``n``. They
      are checked against google-genai's own ``GenerateContentConfig`` before anything is paid, then
      written with their wire names: generation fields into ``generationConfig``, request fields
      (``safetySettings``, ``tools``, ``toolConfig``, ``cachedContent``, ``labels``,
      ``serviceTier``, ``store``) next to it.
    * A JSON schema -> ``responseJsonSchema``, not ``responseSchema``: that field takes Gemini's
      OpenAPI 3.0 subset (upper-case types, ``nullable``, no ``$ref``/``$defs``), so a pydantic
      schema would have to be rewritten (google-genai's ``t_schema`` does it lossily), while
      ``responseJsonSchema`` takes JSON Schema unchanged.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pydantic
from google.genai import types

from airflow_llm_batch.backends.generate_content_request import Dialect, generate_content_request
from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.pipeline.types import Endpoint, LLMRequest

#: GenerateContentConfig fields that go into ``generationConfig``
GENERATION_FIELDS = frozenset({
    "temperature", "top_p", "top_k", "candidate_count", "max_output_tokens", "stop_sequences",
    "response_logprobs", "logprobs", "presence_penalty", "frequency_penalty", "seed", "response_modalities",
    "media_resolution", "speech_config", "thinking_config", "image_config", "enable_enhanced_civic_answers",
    "audio_transcription_config",
})
#: GenerateContentConfig fields that sit on the request itself, next to ``generationConfig``
REQUEST_FIELDS = frozenset({"safety_settings", "tools", "tool_config", "labels", "cached_content", "service_tier",
                            "store"})
#: OpenAI spellings accepted for convenience
PARAM_ALIASES = {"max_tokens": "max_output_tokens", "max_completion_tokens": "max_output_tokens",
                 "stop": "stop_sequences", "n": "candidate_count"}
#: params refused, with what to use instead
REFUSED_PARAMS = {
    "system_instruction": "the operator's system_prompt",
    "response_mime_type": "the operator's response_format",
    "response_schema": "the operator's response_format",
    "response_json_schema": "the operator's response_format",
    "routing_config": "provider='vertex' (Vertex AI only)",
    "model_selection_config": "provider='vertex' (Vertex AI only)",
    "audio_timestamp": "provider='vertex' (Vertex AI only)",
    "model_armor_config": "provider='vertex' (Vertex AI only)",
    "generation_output_config": "provider='vertex' (Vertex AI only)",
}
_CONFIG_FIELDS = types.GenerateContentConfig.model_fields
_BY_ALIAS = {info.alias: name for name, info in _CONFIG_FIELDS.items() if info.alias}
#: wire names of the request-level fields (what the inline conversion moves back into the config)
_REQUEST_WIRE_FIELDS = ("systemInstruction", *(str(_CONFIG_FIELDS[name].alias) for name in sorted(REQUEST_FIELDS)))


def request_body(request: LLMRequest) -> dict[str, Any]:
    """The ``GenerateContentRequest`` (wire JSON) of one request."""
    return generate_content_request(request, GEMINI)


def model_path(model: str) -> str:
    """``models/<name>`` (tuned models keep their ``tunedModels/`` path)."""
    return model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"


def read_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Request params -> (``generationConfig`` fields, request-level fields), checked (see :func:`translate_params`)."""
    try:
        key = json.dumps(params, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"request_params must be JSON values: {exc}") from exc
    return translate_params(key)


@functools.lru_cache(maxsize=64)
def translate_params(params_json: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Request params (JSON text) -> (``generationConfig`` fields, request-level fields), wire names.

    Checked against google-genai's ``GenerateContentConfig``: unknown names and bad values are an
    InvalidInputError before anything is paid. Cached: every row of a task has the same params.
    """
    snake: dict[str, Any] = {}
    for raw_name, value in json.loads(params_json).items():
        name = PARAM_ALIASES.get(raw_name, _BY_ALIAS.get(raw_name, raw_name))
        if name in REFUSED_PARAMS:
            raise InvalidInputError(f"request_params: {raw_name!r} is not accepted here; use {REFUSED_PARAMS[name]}")
        if name not in GENERATION_FIELDS and name not in REQUEST_FIELDS:
            known = sorted(GENERATION_FIELDS | REQUEST_FIELDS | set(PARAM_ALIASES))
            raise InvalidInputError(f"request_params: {raw_name!r} is not a Gemini generateContent parameter; "
                                    f"known: {known}")
        if name == "stop_sequences" and isinstance(value, str):
            value = [value]
        if name in snake:
            raise InvalidInputError(f"request_params: {raw_name!r} repeats {name!r}")
        snake[name] = value
    try:
        types.GenerateContentConfig.model_validate(snake)
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise InvalidInputError(f"request_params are not valid Gemini parameters: {problems}") from exc
    generation = {str(_CONFIG_FIELDS[k].alias): v for k, v in snake.items() if k in GENERATION_FIELDS}
    request_level = {str(_CONFIG_FIELDS[k].alias): v for k, v in snake.items() if k in REQUEST_FIELDS}
    return generation, request_level


GEMINI = Dialect("Gemini", frozenset({Endpoint.CHAT}), read_params, model_field=model_path)


def inlined_request(line: dict[str, Any]) -> dict[str, Any]:
    """A chunk line ``{"key", "request"}`` -> google-genai's ``InlinedRequest`` (as a dict), which the
    SDK turns back into the same wire request, with ``metadata: {"key": ...}`` to join the answer."""
    request = line["request"]
    config = dict(request.get("generationConfig") or {})
    config.update({name: request[name] for name in _REQUEST_WIRE_FIELDS if name in request})
    inlined: dict[str, Any] = {"model": request.get("model"), "contents": request["contents"],
                               "metadata": {"key": str(line["key"])}}
    if config:
        inlined["config"] = config
    return inlined


def inline_body_size(lines: list[dict[str, Any]]) -> int:
    """The create body's size as google-genai serializes it (``json.dumps`` defaults: spaces after
    separators, non-ASCII escaped), with the metadata that carries each key."""
    items = (json.dumps({"request": line["request"], "metadata": {"key": str(line["key"])}}) for line in lines)
    return 256 + sum(len(item) + 2 for item in items)
