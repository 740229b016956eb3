"""Request fingerprints: the identity of a request, independent of the row that carries it.

Two rows whose provider request lines are equal except for their per-row ids ask the same thing,
so they share one fingerprint and one answer (sent once per run, and once across runs through the
request cache). Anything that can change the answer (model, messages, parameters, response schema,
endpoint) is part of the line and so of the fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

#: top-level fields of a request line that only identify the row: OpenAI/Anthropic ``custom_id``,
#: Gemini ``key``. Nested fields of the same name (e.g. a schema property "key") are kept.
ROW_ID_FIELDS = frozenset({"custom_id", "key"})


def request_fingerprint(provider: str, line: dict[str, Any]) -> str:
    """The sha256 hex digest of ``{"provider": provider, "line": line without its row ids}`` as
    canonical JSON (sorted keys, compact separators, UTF-8 kept as is).

    Example::

        >>> a = {"custom_id": "row-1", "body": {"model": "gpt-4o-mini", "messages": ["hi"]}}
        >>> b = {"custom_id": "row-2", "body": {"model": "gpt-4o-mini", "messages": ["hi"]}}
        >>> request_fingerprint("openai", a) == request_fingerprint("openai", b)
        True
        >>> request_fingerprint("openai", a) == request_fingerprint("azure_openai", a)
        False
    """
    request = {name: value for name, value in line.items() if name not in ROW_ID_FIELDS}
    canonical = json.dumps({"provider": provider, "line": request}, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
