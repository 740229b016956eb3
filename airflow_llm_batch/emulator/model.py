"""The emulator's deterministic "model": what it answers, and how it counts tokens.

Every provider module turns its request format into plain texts and calls these functions, so all
emulated APIs answer and bill the same way. Nothing here is random: the same request always gets
the same answer, in any process, on any machine (hashes come from :mod:`hashlib`, never from
Python's salted ``hash()``).

Answers
    * Text generation (OpenAI chat completions, Responses, completions; Anthropic messages) echoes
      the TEXT OF THE LAST USER MESSAGE verbatim, markers included. A message whose content is a
      list of parts contributes its text parts joined with a newline. With no user message the
      answer is the empty string.
    * Structured output (a JSON schema response format, a forced Anthropic tool, Anthropic
      ``output_config.format``): an object that validates against the schema, derived from the
      echo text and each field's JSON path (rules in :mod:`.schema_values`).
    * JSON mode without a schema (OpenAI ``{"type": "json_object"}``) answers
      ``{"text": <echo>}``.
    * Embeddings: a unit-norm vector per input text (16 dimensions unless the request or the
      config asks for another size), derived from SHA-256 of the text.

Token counting (the same for every API)
    ``count_tokens(text) = max(1, cl100k_base tokens of text)`` (``pipeline/token_count.py``, the
    tokenizer the package's estimates use). A prompt costs the sum over its messages
    (system/instructions count as one message) of ``count_tokens(text) + 3``. The completion costs
    ``count_tokens(answer)`` where the answer is the text, the JSON string, or the JSON of a tool
    call's input. Embedding inputs cost ``count_tokens(text)`` each, without overhead.

Prompt markers for tests (in the last user message; for embeddings and moderations in the last
input text, for legacy completions in the last prompt)
    * ``[[emulator:error:CODE]]``: the row fails with error code ``CODE``. OpenAI puts a response
      with a matching HTTP status (see ``openai_answers.ERROR_STATUS``: 429 for
      ``rate_limit_exceeded``, 500 for ``server_error``, 400 for unknown codes...) in the error
      file; Anthropic reports ``{"type": "errored"}`` with ``error.type == CODE``.
    * ``[[emulator:truncate]]``: the answer is cut to its first half and the row reports running
      out of tokens (``finish_reason="length"``, Responses ``status="incomplete"``, Anthropic
      ``stop_reason="max_tokens"``). Structured answers are cut too (the JSON becomes invalid, as
      it would for a real truncated answer).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_llm_batch.pipeline.token_count import count_text_tokens

MESSAGE_OVERHEAD_TOKENS = 3
"""Tokens added per prompt message on top of its text."""

_ERROR_MARKER = re.compile(r"\[\[emulator:error:([A-Za-z0-9_.\-]+)\]\]")
_TRUNCATE_MARKER = "[[emulator:truncate]]"
_TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})


# --------------------------------------------------------------------------------------- hashing
def stable_hash(*parts: str) -> int:
    """A 64-bit hash of ``parts`` that is the same in every process (unlike ``hash()``)."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def short_id(*parts: str, length: int = 24) -> str:
    """A deterministic hex identifier derived from ``parts``."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:length]


# ---------------------------------------------------------------------------------------- tokens
@functools.lru_cache(maxsize=64)
def count_tokens(text: str) -> int:
    """Emulated token count of one text: the estimate's tokenizer (cl100k_base), at least one.

    Remembers the last few texts: an echoed answer is the prompt it was counted from a moment ago."""
    return max(1, count_text_tokens(text))


def prompt_tokens(message_texts: Iterable[str]) -> int:
    """Emulated prompt tokens: each message's text tokens plus a fixed per-message overhead."""
    return sum(count_tokens(text) + MESSAGE_OVERHEAD_TOKENS for text in message_texts)


# ------------------------------------------------------------------------------------ text input
def content_text(content: Any) -> str:
    """The text of a message ``content``: a string, or a list of parts whose text parts are
    joined with newlines (images, audio and other parts contribute nothing)."""
    if isinstance(content, str):
        return content
    if isinstance(content, Mapping):
        content = [content]
    if isinstance(content, Sequence) and not isinstance(content, (bytes, bytearray)):
        texts: list[str] = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping):
                text = part.get("text")
                if isinstance(text, str) and part.get("type", "text") in _TEXT_PART_TYPES:
                    texts.append(text)
        return "\n".join(texts)
    return ""


@dataclass(frozen=True)
class Markers:
    """Test markers found in a prompt."""

    error_code: str | None = None
    truncate: bool = False


def parse_markers(text: str) -> Markers:
    """Find ``[[emulator:error:CODE]]`` and ``[[emulator:truncate]]`` in ``text``."""
    if "[[emulator:" not in text:
        return Markers()
    match = _ERROR_MARKER.search(text)
    return Markers(error_code=match.group(1) if match else None, truncate=_TRUNCATE_MARKER in text)


def truncate_answer(text: str) -> str:
    """The answer of a row that "ran out of tokens": its first half."""
    return text[: len(text) // 2]


# ---------------------------------------------------------------------------- structured answers
def json_object_answer(text: str) -> dict[str, Any]:
    """The answer to JSON mode without a schema."""
    return {"text": text}


def dumps_compact(value: Any) -> str:
    """JSON text as a model would produce it (compact, non-ASCII kept)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# ------------------------------------------------------------------------------------ embeddings
def embedding_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit-norm vector for ``text``."""
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{counter}\x1f{text}".encode()).digest()
        values.extend(int.from_bytes(digest[i : i + 4], "big") / 2**31 - 1.0 for i in range(0, 32, 4))
        counter += 1
    del values[dimensions:]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]
