"""Small JSON-schema rewrites some providers demand.

OpenAI's strict structured outputs accept a subset of JSON schema (the rules its SDK applies in
``to_strict_json_schema``): every object closes ``additionalProperties`` and requires every property,
a ``default: null`` is dropped (the field stays nullable through its type), a ``$ref`` with sibling
keywords is inlined (the service refuses siblings next to a ``$ref``), and a single-entry ``allOf``
is merged into its parent. The rewrite walks the keywords that hold sub-schemas.
"""

from __future__ import annotations

import copy
from typing import Any

_SCHEMA_MAPS = ("$defs", "definitions", "properties")
_SCHEMA_LISTS = ("anyOf", "allOf")


def strict_object_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` rewritten for OpenAI strict mode (the input is left untouched).

    Example: ``strict_object_schema({"type": "object", "properties": {"a": {"type": ["string", "null"],
    "default": None}}})`` -> ``{"type": "object", "properties": {"a": {"type": ["string", "null"]}},
    "required": ["a"], "additionalProperties": False}``
    """
    original = copy.deepcopy(schema)
    strict: dict[str, Any] = _strict(original, original)
    return strict


def _strict(node: Any, root: dict[str, Any]) -> Any:
    if not isinstance(node, dict):
        return node
    node = dict(node)
    ref = node.pop("$ref", None)
    if isinstance(ref, str) and node:  # siblings next to a $ref: inline the target, siblings win
        return _strict({**_resolve(root, ref), **node}, root)
    if ref is not None:
        node["$ref"] = ref
    _rewrite_children(node, root)
    if isinstance(node.get("properties"), dict):
        node["required"] = list(node["properties"])
    if node.get("type") == "object":
        node.setdefault("additionalProperties", False)
    if "default" in node and node["default"] is None:
        del node["default"]
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1:
        merged = {**node, **all_of[0]}
        merged.pop("allOf", None)
        return merged
    return node


def _rewrite_children(node: dict[str, Any], root: dict[str, Any]) -> None:
    for name in _SCHEMA_MAPS:
        if isinstance(node.get(name), dict):
            node[name] = {key: _strict(value, root) for key, value in node[name].items()}
    for name in _SCHEMA_LISTS:
        if isinstance(node.get(name), list):
            node[name] = [_strict(value, root) for value in node[name]]
    if isinstance(node.get("items"), dict):
        node["items"] = _strict(node["items"], root)


def _resolve(root: dict[str, Any], ref: str) -> dict[str, Any]:
    """The sub-schema a local ``#/...`` reference points at; a clear error for any other reference."""
    if not ref.startswith("#/"):
        raise ValueError(f"response schema: only local references ('#/$defs/...') can be used, not {ref!r}")
    target: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(target, dict) or part not in target:
            raise ValueError(f"response schema: the reference {ref!r} points at nothing")
        target = target[part]
    if not isinstance(target, dict):
        raise ValueError(f"response schema: the reference {ref!r} is not a schema object")
    return target
