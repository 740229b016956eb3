"""The common line of an Anthropic batch results file read straight from its bytes by a typed msgspec decoder.

Most results lines are a message that succeeded with text blocks only and stopped on its own (or at a stop
sequence, or at its token limit). :func:`decode_common_line` reads such a line into the same
:class:`RawResult` that ``fast_json.loads`` + the SDK's ``construct_type`` + ``anthropic_results.decode_result``
give (built in C: no dicts, no pydantic models) and says ``None`` for ANY other line (errored, canceled,
expired, tool calls, citations, a refusal, unknown fields, broken lines), which the caller then reads the
general way (``anthropic_results.read_results_line``; tests/backends/test_anthropic_lines.py).

Rules shared with the other typed line decoders (every field declared, an unknown one sends the line the
general way; numbers and strings checked as orjson checks them): ``strict_lines``.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from airflow_llm_batch.pipeline.strict_lines import DECODE_ERRORS, MODEL_NAMES, Int64, Strict, shared_model
from airflow_llm_batch.pipeline.types import FinishReason, RawResult, raw_result_of

_STOPS = ("end_turn", "stop_sequence", "max_tokens")
#: the stop reasons of the common line -> the neutral reason, as ``decode_result`` maps them
_FINISH = {word: FinishReason.parse(word) for word in _STOPS}


class _Text(Strict):
    type: Literal["text"]
    text: str
    citations: None = None  # a citation sends the line the general way


class _CacheCreation(Strict):
    ephemeral_5m_input_tokens: Int64 | None = None
    ephemeral_1h_input_tokens: Int64 | None = None


class _ServerToolUse(Strict):
    web_search_requests: Int64 | None = None
    web_fetch_requests: Int64 | None = None


class _OutputDetails(Strict):
    thinking_tokens: Int64 | None = None


class _Usage(Strict):
    input_tokens: Int64
    output_tokens: Int64
    cache_creation_input_tokens: Int64 | None = None
    cache_read_input_tokens: Int64 | None = None
    cache_creation: _CacheCreation | None = None
    server_tool_use: _ServerToolUse | None = None
    output_tokens_details: _OutputDetails | None = None
    service_tier: str | None = None
    inference_geo: str | None = None
    speed: str | None = None


class _Message(Strict):
    content: list[_Text]
    stop_reason: Literal["end_turn", "stop_sequence", "max_tokens"]
    model: str
    usage: _Usage
    id: str | None = None
    type: str | None = None
    role: str | None = None
    stop_sequence: str | None = None
    stop_details: None = None
    container: None = None
    diagnostics: None = None


class _Result(Strict):
    type: Literal["succeeded"]
    message: _Message


class _Line(Strict):
    custom_id: str
    result: _Result


_decode = msgspec.json.Decoder(_Line).decode


def decode_common_line(line: bytes) -> RawResult | None:
    """The answer of a common results line (see the module); ``None`` for any other line."""
    try:
        document = _decode(line)
    except DECODE_ERRORS:
        return None
    message = document.result.message
    usage = message.usage
    read = usage.cache_read_input_tokens or 0
    tokens = (usage.input_tokens + (usage.cache_creation_input_tokens or 0) + read, usage.output_tokens, read)
    text = "".join([block.text for block in message.content])
    model = known_model(message.model) or shared_model(message.model)
    return raw_result_of((document.custom_id, True, text, None, model, tokens, None, None,
                          _FINISH[message.stop_reason]))


known_model = MODEL_NAMES.get  # the shared model name, if kept (see strict_lines)
