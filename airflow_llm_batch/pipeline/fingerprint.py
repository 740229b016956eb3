"""Request fingerprints: the identity of a request, independent of the row that carries it.

Two rows whose provider request lines are equal except for their per-row ids ask the same thing,
so they share one fingerprint and one answer (sent once per run, and once across runs through the
request cache). Anything that can change the answer (model, messages, parameters, response schema,
endpoint) is part of the line and so of the fingerprint, and so is *where* the answer comes from: the
backend's endpoint identity (base URL, project, region...). An answer of the emulator is never
served to a run against a real service, nor an answer of one host to a run against another.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
from collections.abc import Callable
from json.encoder import encode_basestring
from typing import Any

from airflow_llm_batch.pipeline.compiled_line import ID_SENTINEL, KEY_SENTINEL, PROMPT_SENTINEL, LineOf

#: top-level fields of a request line that only identify the row: OpenAI/Anthropic ``custom_id``,
#: Gemini ``key``. Nested fields of the same name (e.g. a schema property "key") are kept.
ROW_ID_FIELDS = frozenset({"custom_id", "key"})
#: what ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` builds on every call
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
#: the canonical texts hashed while :meth:`CompiledFingerprint.of` traces a fingerprint function
_TRACE: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("llm_batch_fp_trace", default=None)


def request_fingerprint(provider: str, line: dict[str, Any], endpoint: str | None = None) -> str:
    """The sha256 hex digest of ``{"provider": provider, "line": line without its row ids}`` (plus
    ``"endpoint": endpoint`` when given) as canonical JSON (sorted keys, compact separators, UTF-8
    kept as is).

    Example::

        >>> a = {"custom_id": "row-1", "body": {"model": "gpt-4o-mini", "messages": ["hi"]}}
        >>> b = {"custom_id": "row-2", "body": {"model": "gpt-4o-mini", "messages": ["hi"]}}
        >>> request_fingerprint("openai", a) == request_fingerprint("openai", b)
        True
        >>> request_fingerprint("openai", a) == request_fingerprint("azure_openai", a)
        False
        >>> request_fingerprint("openai", a, "https://api.openai.com/v1/") == request_fingerprint(
        ...     "openai", a, "http://127.0.0.1:8787/v1/")
        False
    """
    request = {name: value for name, value in line.items() if name not in ROW_ID_FIELDS}
    document: dict[str, Any] = {"provider": provider, "line": request}
    if endpoint is not None:
        document["endpoint"] = endpoint
    canonical = _CANONICAL.encode(document)
    traced = _TRACE.get()
    if traced is not None:
        traced.append(canonical)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class CompiledFingerprint:
    """The fingerprint of request lines that differ only by their custom_id and prompt (a compiled
    line, compiled_line.py): the canonical text is built once with a hole for the prompt, and a
    row's fingerprint is a copy of the hash of the part before the hole, fed the prompt as the
    standard library writes a JSON string (the same function json.dumps uses, so the same bytes) and
    the part after it. About a tenth of building the row's request and hashing it again.

    ``of`` traces the run's fingerprint function on a sentinel line: it must hash exactly one
    canonical text (request_fingerprint's) and return its digest, the prompt must appear once in it,
    and neither the custom_id nor the key at all; else there is no compiled fingerprint. prepare.py
    also checks the first rows against the function itself and drops this one at the first
    difference.

    Example::

        >>> line_of = lambda cid, prompt: {"custom_id": cid, "body": {"messages": [prompt]}}
        >>> slow = lambda line: request_fingerprint("openai", line, "openai|https://api.openai.com/v1")
        >>> compiled = CompiledFingerprint.of(slow, line_of)
        >>> compiled.fingerprint("Bonjour\u2028") == slow(line_of("row-1", "Bonjour\u2028"))
        True
    """

    def __init__(self, head: bytes, tail: bytes) -> None:
        self._head, self._tail = hashlib.sha256(head), tail

    @classmethod
    def of(cls, fingerprint: Callable[[dict[str, Any]], str], line_of: LineOf) -> CompiledFingerprint | None:
        """The compiled form of ``fingerprint`` for ``line_of``'s lines, or None when it has none."""
        traced: list[str] = []
        token = _TRACE.set(traced)
        try:
            digest = fingerprint(line_of(ID_SENTINEL, PROMPT_SENTINEL))
        except Exception:
            return None
        finally:
            _TRACE.reset(token)
        if len(traced) != 1 or hashlib.sha256(traced[0].encode("utf-8")).hexdigest() != digest:
            return None  # not (only) request_fingerprint's digest: nothing to compile
        canonical, hole = traced[0], encode_basestring(PROMPT_SENTINEL)
        if canonical.count(PROMPT_SENTINEL) != 1 or canonical.count(hole) != 1 or any(
                sentinel in canonical for sentinel in (ID_SENTINEL, KEY_SENTINEL)):
            return None
        head, tail = canonical.split(hole)
        return cls(head.encode("utf-8"), tail.encode("utf-8"))

    def fingerprint(self, prompt: str) -> str | None:
        """The fingerprint of the line holding ``prompt``, or None when it is not valid Unicode (a lone
        surrogate: the caller builds the line and lets the function raise as it always did)."""
        try:
            text = encode_basestring(prompt).encode("utf-8")
        except UnicodeEncodeError:
            return None
        return self.of_json(text)

    def of_json(self, text: bytes) -> str:
        """The fingerprint of the line holding the prompt whose JSON string (quotes included, UTF-8) is
        ``text``. orjson writes every string as ``encode_basestring`` does (each code point but lone
        surrogates, which orjson refuses, gives the same bytes: tested on all of them), so the prompt's
        bytes in a compiled line (compiled_line.py) are hashed as they are, not encoded a second time."""
        digest = self._head.copy()
        digest.update(text + self._tail)  # one update of a short joined text costs less than two
        return digest.hexdigest()


def endpoint_identity(backend: Any) -> str:
    """Where ``backend``'s answers come from: its ``endpoint_identity`` (base URL, organisation or
    project, region...), or only its provider name for a backend that does not say."""
    identity = getattr(backend, "endpoint_identity", None)
    return f"{backend.name}|{identity}" if isinstance(identity, str) and identity else str(backend.name)
