"""The common line of an OpenAI batch output file read straight from its bytes by a typed msgspec decoder.

Most output lines are a chat completion that succeeded. :func:`decode_common_line` reads such a line
into the same :class:`RawResult` that ``openai.output_object`` + ``openai.decode_output_line`` give
(~3x cheaper: msgspec builds only the fields read, in C) and says ``None`` for ANY other line, which the
caller then reads the general way, so every other answer, a blank line and a broken one are read
exactly as before (tests/backends/test_openai_lines.py).

Why every field of the line is declared and an unknown one sends the line the general way
(``forbid_unknown_fields``): msgspec skips an unknown field's value without checking all of it (an
invalid UTF-8 string or a number beyond the float range, such as ``1e400``, passes), where orjson
refuses the whole line. Declared fields are checked as orjson checks them: strings for UTF-8, integers
within 64 bits (beyond them orjson gives a float or refuses the line); msgspec's ``int`` takes no bool
and no float. A key given twice keeps its last value, as in orjson. Cost of the full declaration: ~0.1
us a line more than skipping. OpenAI adding a field to its lines only makes them slower (the general
way), never read otherwise.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from airflow_llm_batch.pipeline.types import FinishReason, RawResult, raw_result_of

#: 64-bit integers, which orjson reads exactly (beyond them it gives a float, or refuses the line): any
#: other integer sends the line the general way (msgspec's bounds must fit an int64; orjson's reach 2**64 - 1)
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


class Strict(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A JSON object of the line: an unknown key makes the line go the general way (also for
    generate_content_lines)."""


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
    except (msgspec.MsgspecError, ValueError, RecursionError):  # not JSON, not the common line, not UTF-8
        return None
    body = document.response.body
    (choice,) = body.choices
    message, usage = choice.message, body.usage
    if message.refusal:
        return None
    tokens = (usage.prompt_tokens, usage.completion_tokens, usage.prompt_tokens_details.cached_tokens)
    return raw_result_of((document.custom_id, True, message.content, None, body.model, tokens, None, None,
                          FinishReason.STOP))
