"""Reading Anthropic Message Batches: a batch's neutral state and each results line as a `RawResult`.

A results line is read from its bytes (:func:`read_results_line`): the common one by the typed decoder of
``anthropic_lines``, any other with ``fast_json.loads`` into the SDK's model and :func:`decode_result`, the
one general decoder, which gives the same answer for the common line too.

Usage: Anthropic leaves cached tokens out of ``input_tokens``; the neutral input counts every prompt
token (written to the cache, read from it, or neither) and ``cached_input_tokens`` the ones read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from anthropic._models import construct_type_unchecked
from anthropic.types import Message, TextBlock, ToolUseBlock
from anthropic.types.messages import (
    MessageBatchErroredResult,
    MessageBatchIndividualResponse,
    MessageBatchRequestCounts,
    MessageBatchSucceededResult,
)

from airflow_llm_batch.backends.anthropic_lines import decode_common_line
from airflow_llm_batch.backends.json_lines import line_object
from airflow_llm_batch.pipeline.types import (
    BatchProgress,
    BatchState,
    FinishReason,
    RawResult,
    Usage,
    unreadable_answer,
)

STATES = {"in_progress": BatchState.RUNNING, "canceling": BatchState.CANCELLING}
_RESULT_ERRORS = {"canceled": ("batch_cancelled", "the batch was cancelled before this row was answered"),
                  "expired": ("batch_expired", "the batch expired before this row was answered")}

#: the row code of a results line that is JSON but of no shape the decoder knows (``result.message`` null...):
#: what the general decoder raises on a JSON object of an unexpected shape
_SHAPE_ERRORS = (AttributeError, TypeError, ValueError, IndexError, KeyError)


def total(counts: MessageBatchRequestCounts | Mapping[str, Any]) -> int:
    values: Mapping[str, Any] = counts if isinstance(counts, Mapping) else counts.to_dict()
    return sum(int(values.get(name) or 0) for name in ("processing", "succeeded", "errored", "canceled", "expired"))


def batch_state(status: str, counts: Mapping[str, Any], cancel_requested: bool) -> BatchState:
    """Neutral state of a batch. An ended batch is cancelled when a cancel reached it (even if some rows
    were answered first), expired when any request expired (it hit the 24 h limit), else completed
    (whatever share of its rows errored: each row carries its own outcome)."""
    if status != "ended":
        return STATES.get(status, BatchState.RUNNING)
    if cancel_requested or counts.get("canceled"):
        return BatchState.CANCELLED
    return BatchState.EXPIRED if counts.get("expired") else BatchState.COMPLETED


def batch_progress(batch: Mapping[str, Any]) -> BatchProgress:
    """A message batch as the API sends it (JSON) -> BatchProgress: the one status decoder of the SDK
    poll and the triggerer's raw poll (triggers/raw_poll.py)."""
    counts = batch.get("request_counts") or {}
    status = str(batch.get("processing_status"))
    return BatchProgress(
        batch_id=str(batch.get("id")),
        state=batch_state(status, counts, batch.get("cancel_initiated_at") is not None),
        provider_status=status, total=total(counts), completed=int(counts.get("succeeded") or 0),
        failed=sum(int(counts.get(name) or 0) for name in ("errored", "canceled", "expired")),
    )


def read_results_line(line: bytes) -> RawResult | None:
    """The answer of one results line, as ``results()`` yields it; ``None`` for a line without one (blank, or
    broken: not JSON, or not a JSON object; :func:`results_object` tells which)."""
    answer = decode_common_line(line)
    return answer if answer is not None else read_other_line(line)


def read_other_line(line: bytes) -> RawResult | None:
    """Any results line, read with :func:`results_object` and :func:`decode_any_line` (None: blank or broken)."""
    document = results_object(line)
    return decode_any_line(document) if document else None


def results_object(line: bytes) -> dict[str, Any] | None:
    """The JSON object of one results line ({} for a blank line, None for a broken one), integers exact."""
    return line_object(line)


def decode_any_line(document: dict[str, Any]) -> RawResult:
    """A results line's JSON object made into the SDK's model (as the SDK's own results stream makes it) and
    read by :func:`decode_result`; an object of another shape fails its row as ``unreadable_answer``."""
    try:
        return decode_result(construct_type_unchecked(value=document, type_=MessageBatchIndividualResponse))
    except _SHAPE_ERRORS as exc:
        return unreadable_answer(document.get("custom_id"), exc)


def decode_result(line: MessageBatchIndividualResponse) -> RawResult:
    """One results line (SDK object) -> RawResult: succeeded, errored, canceled or expired."""
    custom_id, result = str(line.custom_id), line.result
    if isinstance(result, MessageBatchSucceededResult):
        return decode_message(custom_id, result.message)
    if isinstance(result, MessageBatchErroredResult):
        error = result.error.error
        return RawResult(custom_id, ok=False, error_code=str(error.type or "error"),
                         error_message=str(error.message))
    kind = str(getattr(result, "type", None))
    code, message = _RESULT_ERRORS.get(kind, ("unknown_result", f"unknown result type {kind!r}"))
    return RawResult(custom_id, ok=False, error_code=code, error_message=message)


def decode_message(custom_id: str, message: Message) -> RawResult:
    """Text blocks joined; with a tool call (a forced tool: the structured answer), its input as JSON."""
    usage = _usage(message)
    tool_calls = [block for block in message.content if isinstance(block, ToolUseBlock)]
    if tool_calls:
        text = json.dumps(tool_calls[0].input, ensure_ascii=False)
    else:
        text = "".join(block.text for block in message.content if isinstance(block, TextBlock))
    if message.stop_reason == "refusal":
        return RawResult(custom_id, ok=False, text=text or None, model=message.model, usage=usage,
                         error_code="refusal", error_message="the model declined to answer")
    return RawResult(custom_id, ok=True, text=text, model=message.model, usage=usage,
                     finish_reason=FinishReason.parse(message.stop_reason))


def _usage(message: Message) -> Usage:
    """Anthropic leaves cached tokens out of ``input_tokens``; the neutral input counts every prompt token
    (written to the cache, read from it, or neither) and ``cached_input_tokens`` the ones read."""
    usage = message.usage
    written = usage.cache_creation_input_tokens or 0
    read = usage.cache_read_input_tokens or 0
    return Usage(usage.input_tokens + written + read, usage.output_tokens, read)
