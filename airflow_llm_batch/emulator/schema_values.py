"""Structured answers of the emulated model: a value that validates against a JSON schema.

Used for a JSON schema response format, a forced Anthropic tool and Anthropic
``output_config.format``. The value is derived from the echo text and each field's JSON path, so
the same request always gets the same answer (hashes from :func:`.model.stable_hash`):

- ``string``: the echo text, cut to ``maxLength`` and padded with ``"x"`` to ``minLength``;
  well-known ``format`` values (date-time, date, time, email, uri, uuid, hostname, ipv4, ipv6)
  get a hash-derived value of that format. ``pattern`` is not honoured.
- ``enum``: ``enum[stable_hash(text, path) % len(enum)]``; ``const``: the constant.
- ``integer`` / ``number``: a hash-derived value within minimum/maximum (exclusive bounds and
  integer ``multipleOf`` honoured); without bounds within 0..100.
- ``boolean``: hash parity. ``null``: null.
- ``array``: ``max(1, minItems)`` items (capped by ``maxItems``); ``prefixItems`` honoured.
- ``object``: every declared property, recursively; ``minProperties`` filled from
  ``additionalProperties``.
- ``$ref`` (local JSON pointers such as ``#/$defs/Model``), ``allOf`` (merged),
  ``anyOf``/``oneOf`` (the first non-null branch), type lists (the first non-null type).
  Recursive schemas stop growing after a few levels (optional branches become empty).
- A schema with no type information yields its ``default`` if any, else the echo text.

Example::

    >>> schema_answer({"type": "object", "properties": {"n": {"const": 1}}}, "hi")
    {'n': 1}
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .model import stable_hash

MAX_SCHEMA_DEPTH = 8
"""Past this depth optional properties, array items and nullable branches are left empty."""

_N = TypeVar("_N", int, float)


def schema_answer(schema: Mapping[str, Any], text: str) -> Any:
    """A value that validates against JSON ``schema``, derived deterministically from ``text``."""
    return SchemaFiller(schema, text).fill(schema, "$", 0)


def default_range(low: _N | None, high: _N | None, span: _N) -> tuple[_N, _N]:
    """``(low, high)`` with a missing end ``span`` away from the other (``0..span`` for neither).

    >>> default_range(None, 5, 100), default_range(None, None, 1.0)
    ((-95, 5), (0.0, 1.0))
    """
    if low is None and high is None:
        return span - span, span
    if low is None:
        assert high is not None
        return high - span, high
    if high is None:
        return low, low + span
    return low, high


def numeric_bounds(schema: Mapping[str, Any]) -> tuple[float | None, bool, float | None, bool]:
    """``(low, low_exclusive, high, high_exclusive)`` of a number schema, drafts 4 to 2020-12."""
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


def formatted_string(fmt: Any, h: int) -> str | None:
    """A value of the well-known string ``fmt`` derived from hash ``h``, None for other formats."""
    if not isinstance(fmt, str):
        return None
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


def type_of(schema: Mapping[str, Any]) -> str | None:
    """The schema's type: the first non-null of a type list, else guessed from its keywords."""
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


def _is_null_schema(branch: Any) -> bool:
    return isinstance(branch, Mapping) and branch.get("type") == "null"


def pick_branch(branches: list[Any], depth: int) -> Mapping[str, Any]:
    """The ``anyOf``/``oneOf`` branch to fill: the first non-null one (null once too deep)."""
    non_null = [b for b in branches if isinstance(b, Mapping) and not _is_null_schema(b)]
    if depth >= MAX_SCHEMA_DEPTH and len(non_null) < len(branches):
        return {"type": "null"}
    return non_null[0] if non_null else {"type": "null"}


class SchemaFiller:
    """Builds a schema-valid value from ``text``; ``root`` resolves local ``$ref`` pointers."""

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

    def _dereferenced(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        """``schema`` with its ``$ref`` target merged under its own keywords."""
        own = {k: v for k, v in schema.items() if k != "$ref"}
        return {**self._resolve(str(schema["$ref"])), **own}

    def fill(self, schema: Any, path: str, depth: int) -> Any:
        """The value of ``schema`` at JSON ``path``, ``depth`` levels down."""
        if not isinstance(schema, Mapping):
            return self._text if schema is not False else None
        if "$ref" in schema:
            return self.fill(self._dereferenced(schema), path, depth + 1)
        if "const" in schema:
            return schema["const"]
        options = schema.get("enum")
        if isinstance(options, list) and options:
            return options[self._hash(path) % len(options)]
        if isinstance(schema.get("allOf"), list) and schema["allOf"]:
            return self.fill(self._merge_all_of(schema), path, depth)
        branched = self._with_branch(schema, depth)
        if branched is not None:
            return self.fill(branched, path, depth + 1)
        return self._typed(schema, path, depth)

    def _with_branch(self, schema: Mapping[str, Any], depth: int) -> Mapping[str, Any] | None:
        """``schema`` with its ``anyOf``/``oneOf`` replaced by the chosen branch, None without one."""
        for key in ("anyOf", "oneOf"):
            branches = schema.get(key)
            if isinstance(branches, list) and branches:
                rest = {k: v for k, v in schema.items() if k != key}
                return {**rest, **pick_branch(branches, depth)}
        return None

    def _typed(self, schema: Mapping[str, Any], path: str, depth: int) -> Any:
        build = self._BUILDERS.get(type_of(schema) or "")
        if build is not None:
            return build(self, schema, path, depth)
        if "default" in schema:
            return schema["default"]
        return self._text

    def _merge_all_of(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        properties: dict[str, Any] = dict(merged.get("properties", {}))
        required: list[str] = list(merged.get("required", []))
        for branch in schema["allOf"]:
            if isinstance(branch, Mapping) and "$ref" in branch:
                branch = self._dereferenced(branch)
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

    def _object(self, schema: Mapping[str, Any], path: str, depth: int) -> dict[str, Any]:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        required = set(schema.get("required") or [])
        result: dict[str, Any] = {}
        for name, sub in properties.items():
            if depth >= MAX_SCHEMA_DEPTH and name not in required:
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
        wanted = max(min_items, len(prefix), 0 if depth >= MAX_SCHEMA_DEPTH else 1)
        if isinstance(max_items, int):
            wanted = min(wanted, max_items)
        items_schema = schema.get("items")
        values: list[Any] = []
        for index in range(wanted):
            sub = prefix[index] if index < len(prefix) else items_schema
            values.append(self.fill(sub if isinstance(sub, Mapping) else {}, f"{path}[{index}]", depth + 1))
        return values

    def _string(self, schema: Mapping[str, Any], path: str, depth: int) -> str:
        value = formatted_string(schema.get("format"), self._hash(path))
        if value is None:
            value = self._text
            min_length = int(schema.get("minLength", 0) or 0)
            if len(value) < min_length:
                value += "x" * (min_length - len(value))
            max_length = schema.get("maxLength")
            if isinstance(max_length, int):
                value = value[:max_length]
        return value

    def _integer(self, schema: Mapping[str, Any], path: str, depth: int) -> int:
        low_f, low_ex, high_f, high_ex = numeric_bounds(schema)
        low, high = default_range(
            None if low_f is None else (math.floor(low_f) + 1 if low_ex else math.ceil(low_f)),
            None if high_f is None else (math.ceil(high_f) - 1 if high_ex else math.floor(high_f)),
            100,
        )
        if low > high:
            return low
        h = self._hash(path)
        step = schema.get("multipleOf")
        if isinstance(step, int) and not isinstance(step, bool) and step > 0:
            first = math.ceil(low / step)
            count = math.floor(high / step) - first + 1
            return (first + h % count) * step if count > 0 else low
        return low + h % (high - low + 1)

    def _number(self, schema: Mapping[str, Any], path: str, depth: int) -> float:
        low_bound, _, high_bound, _ = numeric_bounds(schema)
        low, high = default_range(low_bound, high_bound, 100.0)
        if low >= high:
            return float(low)
        fraction = (self._hash(path) % 99 + 1) / 100  # strictly inside (0, 1): exclusive bounds hold
        value = low + (high - low) * fraction
        rounded = round(value, 4)
        return rounded if low < rounded < high else value

    def _boolean(self, schema: Mapping[str, Any], path: str, depth: int) -> bool:
        return self._hash(path) % 2 == 0

    def _null(self, schema: Mapping[str, Any], path: str, depth: int) -> None:
        return None

    _BUILDERS: Mapping[str, Callable[[SchemaFiller, Mapping[str, Any], str, int], Any]] = {
        "object": _object,
        "array": _array,
        "string": _string,
        "integer": _integer,
        "number": _number,
        "boolean": _boolean,
        "null": _null,
    }


# ------------------------------------------------------------------------- Google OpenAPI schemas
_SCHEMA_MAPS = frozenset({"properties", "$defs", "defs", "definitions"})
_SUBSCHEMAS = {"items": "items", "prefixItems": "prefixItems", "anyOf": "anyOf", "any_of": "anyOf",
               "oneOf": "oneOf", "allOf": "allOf"}
_SIZES = frozenset({"minItems", "maxItems", "minLength", "maxLength", "min_items", "max_items"})
_OPENAPI_ONLY = frozenset({"nullable", "propertyOrdering", "property_ordering"})


def openapi_to_json_schema(schema: Any) -> Any:
    """A Google ``responseSchema`` (OpenAPI subset: ``"type": "OBJECT"``, ``nullable``, sizes sent
    as strings) as plain JSON Schema; Gemini and Vertex both read it through this one function.

    >>> openapi_to_json_schema({"type": "STRING", "nullable": True, "maxLength": "3"})
    {'type': ['string', 'null'], 'maxLength': 3}
    """
    if isinstance(schema, list):
        return [openapi_to_json_schema(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in _OPENAPI_ONLY:
            out[_SUBSCHEMAS.get(key) or key] = _openapi_value(key, value)
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _openapi_value(key: str, value: Any) -> Any:
    if key == "type" and isinstance(value, str):
        return value.lower()
    if key in _SCHEMA_MAPS and isinstance(value, Mapping):
        return {name: openapi_to_json_schema(sub) for name, sub in value.items()}
    if key in _SUBSCHEMAS:
        return openapi_to_json_schema(value)
    if key in _SIZES and isinstance(value, str) and value.isdigit():
        return int(value)
    return value
