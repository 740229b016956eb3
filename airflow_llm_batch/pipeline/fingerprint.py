"""Request fingerprints: the identity of a request, independent of the row that carries it.

Two rows whose provider request lines are equal except for their per-row ids ask the same thing,
so they share one fingerprint and one answer (sent once per run, and once across runs through the
request cache). Anything that can change the answer (model, messages, parameters, response schema,
endpoint) is part of the line and so of the fingerprint, and so is *where* the answer comes from: the
backend's endpoint identity (base URL, project, region...). An answer of the emulator is never
served to a run against a real service, nor an answer of one host to a run against another.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

#: top-level fields of a request line that only identify the row: OpenAI/Anthropic ``custom_id``,
#: Gemini ``key``. Nested fields of the same name (e.g. a schema property "key") are kept.
ROW_ID_FIELDS = frozenset({"custom_id", "key"})


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
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def endpoint_identity(backend: Any) -> str:
    """Where ``backend``'s answers come from: its ``endpoint_identity`` (base URL, organisation or
    project, region...), or only its provider name for a backend that does not say."""
    identity = getattr(backend, "endpoint_identity", None)
    return f"{backend.name}|{identity}" if isinstance(identity, str) and identity else str(backend.name)
