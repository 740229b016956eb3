"""Prompt-token estimates of request lines, for the enqueued-token budget and the cost estimate.

A request line (any provider's batch format) is parsed and every text in it is counted with the
tokenizer of :mod:`~airflow_llm_batch.pipeline.token_count` (cl100k_base, offline), plus
:data:`TEXT_OVERHEAD_TOKENS` per message for the framing providers add. Values that are not
prompt text (ids, the model name, URLs, roles, part types, numbers) are not counted; texts inside
a structured-output schema or tool definition are, as providers bill them. On English this is within
a few percent of the emulator's count and well within 25% of the providers' (the old ``bytes / 3``
over the whole line was several times too high on short prompts and stopped ``max_cost_usd`` runs
that were within budget).

A line that is not JSON, or a worker without the tokenizer, falls back to ``bytes / 3`` of the whole
line: an upper bound, logged once as such.
"""

from __future__ import annotations

import functools
import logging
import math
from typing import Any

from airflow_llm_batch.pipeline import fast_json
from airflow_llm_batch.pipeline.token_count import (
    ENCODING,
    FALLBACK_BYTES_PER_TOKEN,
    FALLBACK_NAME,
    count_text_tokens,
    tokenizer_name,
)

log = logging.getLogger(__name__)

#: kept for callers that size by bytes: the fallback's bytes per token
BYTES_PER_TOKEN = FALLBACK_BYTES_PER_TOKEN
#: tokens added per message for its framing (the emulator adds the same per message)
TEXT_OVERHEAD_TOKENS = 3
#: keys whose values are not prompt text
_NOT_PROMPT = frozenset({"custom_id", "key", "method", "url", "model", "role", "type", "mime_type", "mimeType",
                         "file_uri", "fileUri", "data", "uri", "name", "strict", "format", "cache_control"})

#: keys holding a system prompt, each framed like a message
_SYSTEM_KEYS = ("system", "systemInstruction", "system_instruction", "instructions")
_SYSTEM_SET = frozenset(_SYSTEM_KEYS)
_warned: list[bool] = []
#: containers of this many nodes or more are remembered by identity (with their count) ...
_SHARED_MIN_NODES = 24
#: ... up to this many of them; objects shared by every line of a run must not be changed in place
_SHARED_MAX = 64
_SHARED: dict[int, tuple[Any, tuple[int, int, int]]] = {}


def estimate_tokens(request_line: bytes) -> int:
    """The prompt tokens of one request line (see the module docstring); at least 1."""
    if tokenizer_name() == ENCODING:
        try:
            document = fast_json.loads(request_line)
        except ValueError:
            document = None
        if isinstance(document, dict):
            return estimate_document_tokens(document)
    _warn_fallback_once()
    return max(1, math.ceil(len(request_line) / FALLBACK_BYTES_PER_TOKEN))


def estimate_document_tokens(document: dict[str, Any], request_line: bytes = b"") -> int:
    """:func:`estimate_tokens` of a request line from its JSON object, not parsed again (a line being
    written: ``request_line`` is its bytes, only used when there is no tokenizer)."""
    if tokenizer_name() != ENCODING:
        _warn_fallback_once()
        return max(1, math.ceil(len(request_line) / FALLBACK_BYTES_PER_TOKEN))
    tokens, messages, _ = _tokens_and_messages(document)
    return max(1, tokens + TEXT_OVERHEAD_TOKENS * messages)


def estimate_method() -> str:
    """How :func:`estimate_tokens` counts here: ``"cl100k_base"`` or ``"bytes/3 upper bound"``."""
    return tokenizer_name()


def _tokens_and_messages(item: Any) -> tuple[int, int, int]:
    """(tokens of every prompt text, messages framing them, nodes walked) of a request or a part of it.

    Messages are objects with a ``role``, and a system prompt / system instruction / instructions.
    A large container met again as the very same object (the strict response schema, tool definitions:
    built once per run and shared by every line) is counted once: see :data:`_SHARED`."""
    shared = _SHARED.get(id(item))
    if shared is not None:
        return shared[1]
    tokens = messages = 0
    nodes = 1
    if isinstance(item, dict):
        messages += ("role" in item) + len(_SYSTEM_SET.intersection(item))
        values: Any = [value for key, value in item.items() if key not in _NOT_PROMPT]
    else:
        values = item
    for value in values:
        if isinstance(value, str):
            tokens += _count_text(value)
            nodes += 1
        elif isinstance(value, (dict, list, tuple)):
            more = _tokens_and_messages(value)
            tokens, messages, nodes = tokens + more[0], messages + more[1], nodes + more[2]
    counted = (tokens, messages, nodes)
    if nodes >= _SHARED_MIN_NODES:
        _remember(item, counted)
    return counted


def _remember(item: Any, counted: tuple[int, int, int]) -> None:
    """Keep ``item`` (a strong reference: its id cannot be reused while it is here) and its count."""
    if len(_SHARED) >= _SHARED_MAX:
        del _SHARED[next(iter(_SHARED))]  # the oldest: a row's own large part churns, the schema comes back
    _SHARED[id(item)] = (item, counted)


@functools.lru_cache(maxsize=4096)
def _count_text(text: str) -> int:
    """``count_text_tokens``, remembered: the system prompt and the schema's texts repeat on every
    line of a run and are counted once."""
    return count_text_tokens(text)


def _warn_fallback_once() -> None:
    if not _warned:
        _warned.append(True)
        log.warning("Token estimates use %s of each request line (%s unavailable or a line is not JSON): "
                    "an upper bound, so cost estimates and token budgets are conservative.",
                    FALLBACK_NAME, ENCODING)
