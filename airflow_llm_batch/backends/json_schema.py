"""Small JSON-schema rewrites some providers demand."""

from __future__ import annotations

import copy
from typing import Any


def strict_object_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAI strict mode: every object closes ``additionalProperties`` and requires all properties."""
    result = copy.deepcopy(schema)
    _close(result)
    return result


def _close(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            node["additionalProperties"] = False
            node["required"] = list(node["properties"])
        for value in node.values():
            _close(value)
    elif isinstance(node, list):
        for value in node:
            _close(value)
