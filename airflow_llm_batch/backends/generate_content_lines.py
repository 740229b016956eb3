"""The common line of a Gemini responses file read straight from its bytes by a typed msgspec decoder.

A Gemini Developer API batch writes one ``{"key": ..., "response": GenerateContentResponse}`` line per
request. :func:`decode_common_line` reads the common one (a text answer that stopped or hit its token
limit, camelCase fields as the API writes them) into the :class:`RawResult` that ``json_object`` +
``generate_content.decode_answer`` give, ~4x cheaper, and says ``None`` for ANY other line, which the
caller reads the general way (errors, blocked prompts, snake_case fields, tool calls, unknown fields,
token counts sent as text, broken lines). Every field is declared and an unknown one sends the line
the general way (``strict_lines``), so nothing msgspec would skip unchecked is read otherwise than the
general way reads it (tests/backends/test_generate_content_lines.py).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from airflow_llm_batch.pipeline.strict_lines import DECODE_ERRORS, MODEL_NAMES, Float, Int64, Strict, shared_model
from airflow_llm_batch.pipeline.types import FinishReason, RawResult, raw_result_of

_FINISH = {"STOP": FinishReason.parse("STOP"), "MAX_TOKENS": FinishReason.parse("MAX_TOKENS")}


class _Part(Strict):
    text: str | None = None
    thought: bool | None = None
    thoughtSignature: str | None = None


class _Content(Strict):
    parts: list[_Part]
    role: str | None = None


class _Candidate(Strict):
    content: _Content
    finishReason: Literal["STOP", "MAX_TOKENS"]
    index: Int64 | None = None
    avgLogprobs: Float | None = None


class _Modality(Strict):
    modality: str | None = None
    tokenCount: Int64 | None = None


class _Usage(Strict):
    promptTokenCount: Int64 | None = None
    candidatesTokenCount: Int64 | None = None
    totalTokenCount: Int64 | None = None
    thoughtsTokenCount: Int64 | None = None
    cachedContentTokenCount: Int64 | None = None
    toolUsePromptTokenCount: Int64 | None = None
    promptTokensDetails: list[_Modality] | None = None
    candidatesTokensDetails: list[_Modality] | None = None
    cacheTokensDetails: list[_Modality] | None = None
    toolUsePromptTokensDetails: list[_Modality] | None = None


class _Response(Strict):
    candidates: list[_Candidate]
    usageMetadata: _Usage | None = None
    modelVersion: str | None = None
    responseId: str | None = None
    createTime: str | None = None


class _Line(Strict):
    key: str
    response: _Response
    error: None = None


_decode = msgspec.json.Decoder(_Line).decode
_NO_USAGE = _Usage()


def decode_common_line(line: bytes) -> RawResult | None:
    """The answer of a common responses file line (see the module); ``None`` for any other line."""
    try:
        document = _decode(line)
    except DECODE_ERRORS:
        return None
    response = document.response
    if not response.candidates:
        return None
    candidate = response.candidates[0]
    text = "".join(part.text for part in candidate.content.parts if part.text is not None and not part.thought)
    usage = response.usageMetadata or _NO_USAGE
    tokens = ((usage.promptTokenCount or 0) + (usage.toolUsePromptTokenCount or 0),
              (usage.candidatesTokenCount or 0) + (usage.thoughtsTokenCount or 0), usage.cachedContentTokenCount or 0)
    model = known_model(response.modelVersion) or shared_model(response.modelVersion)
    return raw_result_of((document.key, True, text, None, model, tokens, None, None,
                          _FINISH[candidate.finishReason]))


known_model = MODEL_NAMES.get  # the shared model name, if kept (see strict_lines)
