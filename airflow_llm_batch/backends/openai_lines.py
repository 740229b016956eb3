"""The common line of an OpenAI batch output file read straight from its bytes by a typed msgspec decoder.

Most output lines are a chat completion that succeeded. :func:`decode_common_line` reads such a line
into the same :class:`RawResult` that ``openai.output_object`` + ``openai.decode_output_line`` give
(~1.8x cheaper on a 1 KB line: built in C, no dicts) and says ``None`` for ANY other line, which the
caller then reads the general way, so every other answer, a blank line and a broken one are read
exactly as before (tests/backends/test_openai_lines.py).

Rules shared with the other typed line decoders (every field declared, an unknown one sends the line
the general way; numbers and strings checked as orjson checks them): ``strict_lines``.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from airflow_llm_batch.pipeline.strict_lines import DECODE_ERRORS, MODEL_NAMES, Int64, Strict, shared_model
from airflow_llm_batch.pipeline.types import FinishReason, RawResult, raw_result_of


class _PromptDetails(Strict):
    cached_tokens: Int64
    audio_tokens: Int64 | None = None


class _CompletionDetails(Strict):
    reasoning_tokens: Int64 | None = None
    audio_tokens: Int64 | None = None
    accepted_prediction_tokens: Int64 | None = None
    rejected_prediction_tokens: Int64 | None = None


class _Usage(Strict):
    prompt_tokens: Int64
    completion_tokens: Int64
    prompt_tokens_details: _PromptDetails
    total_tokens: Int64 | None = None
    completion_tokens_details: _CompletionDetails | None = None


class _Message(Strict):
    content: str
    refusal: str | None = None
    role: str | None = None
    annotations: tuple[()] = ()  # a citation (an object) sends the line the general way


class _Choice(Strict):
    message: _Message
    finish_reason: Literal["stop"]
    index: Int64 | None = None
    logprobs: None = None


class _Body(Strict):
    object: Literal["chat.completion"]
    choices: tuple[_Choice]  # exactly one
    usage: _Usage
    model: str | None = None
    id: str | None = None
    created: Int64 | None = None
    service_tier: str | None = None
    system_fingerprint: str | None = None


class _Response(Strict):
    status_code: Literal[200]
    body: _Body
    request_id: str | None = None


class _Line(Strict):
    custom_id: str
    error: None
    response: _Response
    id: str | None = None


_decode = msgspec.json.Decoder(_Line).decode


def decode_common_line(line: bytes) -> RawResult | None:
    """The answer of a common output line (see the module); ``None`` for any other line."""
    try:
        document = _decode(line)
    except DECODE_ERRORS:
        return None
    body = document.response.body
    (choice,) = body.choices
    message, usage = choice.message, body.usage
    if message.refusal:
        return None
    tokens = (usage.prompt_tokens, usage.completion_tokens, usage.prompt_tokens_details.cached_tokens)
    model = known_model(body.model) or shared_model(body.model)
    return raw_result_of((document.custom_id, True, message.content, None, model, tokens, None, None,
                          FinishReason.STOP))


known_model = MODEL_NAMES.get  # the shared model name, if kept (see strict_lines)
