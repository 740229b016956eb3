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
      echo text and each field's JSON path:

      - ``string``: the echo text, cut to ``maxLength`` and padded with ``"x"`` to ``minLength``;
        well-known ``format`` values (date-time, date, time, email, uri, uuid, hostname, ipv4,
        ipv6) get a hash-derived value of that format. ``pattern`` is not honoured.
      - ``enum``: ``enum[stable_hash(text, path) % len(enum)]``; ``const``: the constant.
      - ``integer`` / ``number``: a hash-derived value within minimum/maximum (exclusive bounds
        and integer ``multipleOf`` honoured); without bounds within 0..100.
      - ``boolean``: hash parity. ``null``: null.
      - ``array``: ``max(1, minItems)`` items (capped by ``maxItems``); ``prefixItems`` honoured.
      - ``object``: every declared property, recursively; ``minProperties`` filled from
        ``additionalProperties``.
      - ``$ref`` (local JSON pointers such as ``#/$defs/Model``), ``allOf`` (merged),
        ``anyOf``/``oneOf`` (the first non-null branch), type lists (the first non-null type).
        Recursive schemas stop growing after a few levels (optional branches become empty).
      - A schema with no type information yields its ``default`` if any, else the echo text.
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

import datetime as dt
import hashlib
import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_llm_batch.pipeline.token_count import count_text_tokens

MESSAGE_OVERHEAD_TOKENS = 3
"""Tokens added per prompt message on top of its text."""

_ERROR_MARKER = re.compile(r"\[\[emulator:error:([A-Za-z0-9_.\-]+)\]\]")
_TRUNCATE_MARKER = "[[emulator:truncate]]"
_MAX_SCHEMA_DEPTH = 8
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
def count_tokens(text: str) -> int:
    """Emulated token count of one text: the estimate's tokenizer (cl100k_base), at least one."""
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


def schema_answer(schema: Mapping[str, Any], text: str) -> Any:
    """A value that validates against JSON ``schema``, derived deterministically from ``text``."""
    return _SchemaFiller(schema, text).fill(schema, "$", 0)


def dumps_compact(value: Any) -> str:
    """JSON text as a model would produce it (compact, non-ASCII kept)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class _SchemaFiller:
    """Builds a schema-valid value; ``root`` resolves local ``$ref`` pointers."""

    def __init__(self, root: Mapping[str, Any], text: str) -> None:
        self._root = root
        self._text = text

    def _hash(self, path: str) -> int:
        return stable_hash(self._text, path)

    def _resolve(self, ref: str) -> Mapping[str, Any]:
        if not ref.startswith("#"):
            return {}
        node: Any = self._root
        for token in ref[1:].split("/"):
            if not token:
                continue
            token = token.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                return {}
        return node if isinstance(node, Mapping) else {}

    def fill(self, schema: Any, path: str, depth: int) -> Any:
        if not isinstance(schema, Mapping):
            return self._text if schema is not False else None
        if "$ref" in schema:
            merged = {
                **self._resolve(str(schema["$ref"])),
                **{k: v for k, v in schema.items() if k != "$ref"},
            }
            return self.fill(merged, path, depth + 1)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            options = schema["enum"]
            return options[self._hash(path) % len(options)]
        if isinstance(schema.get("allOf"), list) and schema["allOf"]:
            return self.fill(self._merge_all_of(schema), path, depth)
        for key in ("anyOf", "oneOf"):
            branches = schema.get(key)
            if isinstance(branches, list) and branches:
                rest = {k: v for k, v in schema.items() if k != key}
                return self.fill({**rest, **self._pick_branch(branches, depth)}, path, depth + 1)
        kind = self._type_of(schema)
        if kind == "object":
            return self._object(schema, path, depth)
        if kind == "array":
            return self._array(schema, path, depth)
        if kind == "string":
            return self._string(schema, path)
        if kind == "integer":
            return self._integer(schema, path)
        if kind == "number":
            return self._number(schema, path)
        if kind == "boolean":
            return self._hash(path) % 2 == 0
        if kind == "null":
            return None
        if "default" in schema:
            return schema["default"]
        return self._text

    def _merge_all_of(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        properties: dict[str, Any] = dict(merged.get("properties", {}))
        required: list[str] = list(merged.get("required", []))
        for branch in schema["allOf"]:
            if isinstance(branch, Mapping) and "$ref" in branch:
                branch = {
                    **self._resolve(str(branch["$ref"])),
                    **{k: v for k, v in branch.items() if k != "$ref"},
                }
            if not isinstance(branch, Mapping):
                continue
            for key, value in branch.items():
                if key == "properties" and isinstance(value, Mapping):
                    properties.update(value)
                elif key == "required" and isinstance(value, list):
                    required.extend(r for r in value if r not in required)
                else:
                    merged.setdefault(key, value)
        if properties:
            merged["properties"] = properties
        if required:
            merged["required"] = required
        return merged

    @staticmethod
    def _is_null_schema(branch: Any) -> bool:
        return isinstance(branch, Mapping) and branch.get("type") == "null"

    def _pick_branch(self, branches: list[Any], depth: int) -> Mapping[str, Any]:
        non_null = [b for b in branches if isinstance(b, Mapping) and not self._is_null_schema(b)]
        if depth >= _MAX_SCHEMA_DEPTH and len(non_null) < len(branches):
            return {"type": "null"}
        return non_null[0] if non_null else {"type": "null"}

    @staticmethod
    def _type_of(schema: Mapping[str, Any]) -> str | None:
        declared = schema.get("type")
        if isinstance(declared, list):
            non_null = [t for t in declared if t != "null"]
            declared = non_null[0] if non_null else ("null" if declared else None)
        if isinstance(declared, str):
            return declared
        if "properties" in schema or "additionalProperties" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
        return None

    def _object(self, schema: Mapping[str, Any], path: str, depth: int) -> dict[str, Any]:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        required = set(schema.get("required") or [])
        result: dict[str, Any] = {}
        for name, sub in properties.items():
            if depth >= _MAX_SCHEMA_DEPTH and name not in required:
                continue
            result[name] = self.fill(sub, f"{path}.{name}", depth + 1)
        extra = schema.get("additionalProperties")
        min_properties = int(schema.get("minProperties", 0) or 0)
        index = 0
        while len(result) < min_properties:
            key = f"key{index}"
            index += 1
            if key not in result:
                result[key] = self.fill(
                    extra if isinstance(extra, Mapping) else {}, f"{path}.{key}", depth + 1
                )
        return result

    def _array(self, schema: Mapping[str, Any], path: str, depth: int) -> list[Any]:
        min_items = int(schema.get("minItems", 0) or 0)
        max_items = schema.get("maxItems")
        prefix = schema.get("prefixItems")
        prefix = prefix if isinstance(prefix, list) else []
        wanted = max(min_items, len(prefix), 0 if depth >= _MAX_SCHEMA_DEPTH else 1)
        if isinstance(max_items, int):
            wanted = min(wanted, max_items)
        items_schema = schema.get("items")
        values: list[Any] = []
        for index in range(wanted):
            sub = prefix[index] if index < len(prefix) else items_schema
            values.append(self.fill(sub if isinstance(sub, Mapping) else {}, f"{path}[{index}]", depth + 1))
        return values

    def _string(self, schema: Mapping[str, Any], path: str) -> str:
        value = self._formatted(schema.get("format"), path)
        if value is None:
            value = self._text
            min_length = int(schema.get("minLength", 0) or 0)
            if len(value) < min_length:
                value += "x" * (min_length - len(value))
            max_length = schema.get("maxLength")
            if isinstance(max_length, int):
                value = value[:max_length]
        return value

    def _formatted(self, fmt: Any, path: str) -> str | None:
        if not isinstance(fmt, str):
            return None
        h = self._hash(path)
        moment = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=h % (5 * 365 * 86400))
        formats: dict[str, str] = {
            "date-time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "date": moment.strftime("%Y-%m-%d"),
            "time": moment.strftime("%H:%M:%SZ"),
            "email": f"user{h % 100000}@example.com",
            "uri": f"https://example.com/item/{h % 100000}",
            "url": f"https://example.com/item/{h % 100000}",
            "uuid": str(uuid.UUID(int=h << 64 | (h ^ 0x5DEECE66D), version=4)),
            "hostname": f"host{h % 100000}.example.com",
            "ipv4": f"10.{h % 256}.{(h >> 8) % 256}.{(h >> 16) % 256}",
            "ipv6": f"fd00::{h % 65536:x}:{(h >> 16) % 65536:x}",
            "duration": f"PT{h % 3600}S",
        }
        return formats.get(fmt)

    @staticmethod
    def _bounds(schema: Mapping[str, Any]) -> tuple[float | None, bool, float | None, bool]:
        low: float | None = schema.get("minimum")
        high: float | None = schema.get("maximum")
        low_exclusive = high_exclusive = False
        ex_min, ex_max = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        if isinstance(ex_min, bool):  # draft 4: a flag on minimum
            low_exclusive = ex_min and low is not None
        elif isinstance(ex_min, (int, float)) and (low is None or ex_min >= low):
            low, low_exclusive = ex_min, True
        if isinstance(ex_max, bool):
            high_exclusive = ex_max and high is not None
        elif isinstance(ex_max, (int, float)) and (high is None or ex_max <= high):
            high, high_exclusive = ex_max, True
        return low, low_exclusive, high, high_exclusive

    def _integer(self, schema: Mapping[str, Any], path: str) -> int:
        low_f, low_ex, high_f, high_ex = self._bounds(schema)
        low = None if low_f is None else (math.floor(low_f) + 1 if low_ex else math.ceil(low_f))
        high = None if high_f is None else (math.ceil(high_f) - 1 if high_ex else math.floor(high_f))
        if low is None and high is None:
            low, high = 0, 100
        elif low is None:
            assert high is not None
            low = high - 100
        elif high is None:
            high = low + 100
        if low > high:
            return low
        h = self._hash(path)
        step = schema.get("multipleOf")
        if isinstance(step, int) and not isinstance(step, bool) and step > 0:
            first = math.ceil(low / step)
            count = math.floor(high / step) - first + 1
            return (first + h % count) * step if count > 0 else low
        return low + h % (high - low + 1)

    def _number(self, schema: Mapping[str, Any], path: str) -> float:
        low, _, high, _ = self._bounds(schema)
        if low is None and high is None:
            low, high = 0.0, 100.0
        elif low is None:
            assert high is not None
            low = high - 100.0
        elif high is None:
            high = low + 100.0
        if low >= high:
            return float(low)
        fraction = (self._hash(path) % 99 + 1) / 100  # strictly inside (0, 1): exclusive bounds hold
        value = low + (high - low) * fraction
        rounded = round(value, 4)
        return rounded if low < rounded < high else value


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
