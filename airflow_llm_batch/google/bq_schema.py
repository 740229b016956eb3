"""Typed columns from a JSON schema (pydantic's ``model_json_schema()`` or a hand-written one).

The vocabulary is BigQuery's (STRING, INT64, FLOAT64, BOOL, JSON, RECORD; modes NULLABLE,
REQUIRED, REPEATED). It is plain Python: the Parquet sink maps the same columns to Arrow types.

Mapping, per property:

===========================================  =====================================
JSON schema                                  column
===========================================  =====================================
``string`` (any ``format``), string ``enum``  STRING
``integer`` / ``number`` / ``boolean``        INT64 / FLOAT64 / BOOL
``object`` with ``properties``                RECORD (fields mapped recursively)
``object`` without properties, or with        JSON
``additionalProperties`` allowed explicitly
``array`` of a scalar or of an object         REPEATED scalar / REPEATED RECORD
``array`` of arrays, of mixed types           JSON
``anyOf``/``oneOf``/type list with ``null``   the non-null branch, NULLABLE
several non-null branches of other types      JSON (``integer`` + ``number`` -> FLOAT64)
``$ref`` (local), ``allOf``                   resolved / merged
deeper than 8 levels (recursive models)       JSON
===========================================  =====================================

Every parsed column is NULLABLE (a failed row has no parsed value). Values are coerced on the way
out (:func:`coerce`): an answer that does not fit its column lands as NULL in that column (the raw
answer is still in ``output``), never as a failed load.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

STRING, INT64, FLOAT64, BOOL, JSON, RECORD = "STRING", "INT64", "FLOAT64", "BOOL", "JSON", "RECORD"
TIMESTAMP, DATE = "TIMESTAMP", "DATE"
NULLABLE, REQUIRED, REPEATED = "NULLABLE", "REQUIRED", "REPEATED"

#: legacy / alias type names BigQuery may report for an existing table
TYPE_ALIASES = {"INTEGER": INT64, "FLOAT": FLOAT64, "BOOLEAN": BOOL, "STRUCT": RECORD}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,299}$")
_MAX_DEPTH = 8
_SCALARS = {"string": STRING, "integer": INT64, "number": FLOAT64, "boolean": BOOL}


class SchemaMappingError(ValueError):
    """A property cannot become a column (e.g. its name is not a valid column name)."""


@dataclass(frozen=True)
class Column:
    """One column (or RECORD sub-field).

    Example: ``Column("priority", "INT64")``, ``Column("tags", "STRING", "REPEATED")``
    """

    name: str
    type: str
    mode: str = NULLABLE
    fields: tuple[Column, ...] = ()
    description: str = ""

    @property
    def repeated(self) -> bool:
        return self.mode == REPEATED

    def sub(self, name: str) -> Column | None:
        return next((f for f in self.fields if f.name == name), None)


def normalise_type(name: str) -> str:
    upper = name.upper()
    return TYPE_ALIASES.get(upper, upper)


def columns_from_json_schema(schema: Mapping[str, Any]) -> list[Column]:
    """The top-level properties of an object schema as columns (in declaration order)."""
    defs = _definitions(schema)
    root = _resolve(schema, defs)
    properties = root.get("properties")
    if not isinstance(properties, Mapping) or not properties:
        raise SchemaMappingError("the response schema is not an object with properties")
    return [_column(name, sub, defs, 1) for name, sub in properties.items()]


def _definitions(schema: Mapping[str, Any]) -> dict[str, Any]:
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        for name, value in (schema.get(key) or {}).items():
            defs[f"#/{key}/{name}"] = value
    return defs


def _resolve(schema: Any, defs: Mapping[str, Any], seen: int = 0) -> dict[str, Any]:
    """Follow ``$ref`` and merge ``allOf`` (shallowly) into one dict."""
    if not isinstance(schema, Mapping):
        return {}
    out = dict(schema)
    if "$ref" in out and seen < _MAX_DEPTH:
        target = _resolve(defs.get(str(out.pop("$ref")), {}), defs, seen + 1)
        out = {**target, **out}
    if isinstance(out.get("allOf"), list) and seen < _MAX_DEPTH:
        parts = [_resolve(p, defs, seen + 1) for p in out.pop("allOf")]
        merged: dict[str, Any] = {}
        for part in [*parts, out]:
            props = {**merged.get("properties", {}), **part.get("properties", {})}
            merged = {**merged, **part}
            if props:
                merged["properties"] = props
        out = merged
    return out


def _column(name: str, schema: Any, defs: Mapping[str, Any], depth: int) -> Column:
    if not _NAME.match(name):
        raise SchemaMappingError(f"property {name!r} is not a valid column name (letters, digits, underscores)")
    resolved = _resolve(schema, defs)
    description = str(resolved.get("description") or "")[:1024]
    col_type, mode, fields = _shape(resolved, defs, depth)
    return Column(name, col_type, mode, fields, description)


def _shape(schema: dict[str, Any], defs: Mapping[str, Any], depth: int) -> tuple[str, str, tuple[Column, ...]]:
    if depth > _MAX_DEPTH:
        return JSON, NULLABLE, ()
    branches = _branches(schema, defs)
    if branches is not None:
        return _merge_branches([_shape(b, defs, depth) for b in branches])
    kind = _kind(schema)
    if kind in _SCALARS:
        return _SCALARS[kind], NULLABLE, ()
    if kind == "object":
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if not isinstance(props, Mapping) or not props or extra is True or (isinstance(extra, Mapping) and extra):
            return JSON, NULLABLE, ()
        return RECORD, NULLABLE, tuple(_column(n, s, defs, depth + 1) for n, s in props.items())
    if kind == "array":
        items = _resolve(schema.get("items"), defs)
        if not items:
            return JSON, NULLABLE, ()
        inner, inner_mode, fields = _shape(items, defs, depth + 1)
        if inner_mode == REPEATED or inner == JSON:
            return JSON, NULLABLE, ()
        return inner, REPEATED, fields
    return JSON, NULLABLE, ()


def _branches(schema: dict[str, Any], defs: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The non-null alternatives of anyOf/oneOf or a type list, or None when there are none."""
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            options = [_resolve(b, defs) for b in schema[key]]
            return [b for b in options if _kind(b) != "null"] or [{"type": "null"}]
    if isinstance(schema.get("type"), list):
        types = [t for t in schema["type"] if t != "null"] or ["null"]
        base = {k: v for k, v in schema.items() if k != "type"}
        return [{**base, "type": t} for t in types]
    return None


def _merge_branches(shapes: list[tuple[str, str, tuple[Column, ...]]]) -> tuple[str, str, tuple[Column, ...]]:
    if len(shapes) == 1:
        return shapes[0]
    if len({s for s in shapes}) == 1:
        return shapes[0]
    types = {(t, m) for t, m, _ in shapes}
    if types == {(INT64, NULLABLE), (FLOAT64, NULLABLE)}:
        return FLOAT64, NULLABLE, ()
    return JSON, NULLABLE, ()


def _kind(schema: Mapping[str, Any]) -> str:
    """The JSON type of a (resolved, single-branch) schema, inferred from enum/const if untyped."""
    declared = schema.get("type")
    if isinstance(declared, str):
        return declared
    values = schema.get("enum") if isinstance(schema.get("enum"), list) else (
        [schema["const"]] if "const" in schema else None)
    if values:
        kinds = {_value_kind(v) for v in values}
        if kinds == {"integer", "number"}:
            return "number"
        return kinds.pop() if len(kinds) == 1 else "any"
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "any"


def _value_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, Mapping) else "array"


# -- values -----------------------------------------------------------------------------------------
@dataclass
class CoercionStats:
    """Counts values that did not fit their column and were landed as NULL."""

    nulled: dict[str, int] = field(default_factory=dict)

    def note(self, path: str) -> None:
        self.nulled[path] = self.nulled.get(path, 0) + 1


def coerce(value: Any, column: Column, stats: CoercionStats | None = None, path: str = "") -> Any:
    """``value`` shaped for ``column``: JSON-ready, projected onto RECORD fields, or None if unfit.

    JSON columns keep the value as is (a JSON document); callers that need text dump it.
    """
    where = f"{path}.{column.name}" if path else column.name
    if value is None:
        return [] if column.repeated else None
    if column.repeated:
        if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
            return _unfit(stats, where, [])
        single = replace(column, mode=NULLABLE)
        return [v for v in (coerce(item, single, stats, path) for item in value) if v is not None]
    return _coerce_one(value, column, stats, where)


def _coerce_one(value: Any, column: Column, stats: CoercionStats | None, where: str) -> Any:
    if column.type == RECORD:
        if not isinstance(value, Mapping):
            return _unfit(stats, where, None)
        return {f.name: coerce(value.get(f.name), f, stats, where) for f in column.fields}
    convert = SCALARS.get(column.type)
    if convert is None:  # JSON (and types read from a table, such as TIMESTAMP): kept as is
        return value
    fitted = convert(value)
    return _unfit(stats, where, None) if fitted is UNFIT else fitted


#: what a scalar converter returns for a value that does not fit its column
UNFIT: Any = object()


def _as_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (Mapping, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _as_int64(value: Any) -> Any:
    if isinstance(value, bool):
        return UNFIT
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    return UNFIT


def _as_float64(value: Any) -> Any:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else UNFIT


#: column type -> the value's converter (UNFIT when it does not fit)
SCALARS: dict[str, Callable[[Any], Any]] = {
    STRING: _as_string,
    BOOL: lambda value: value if isinstance(value, bool) else UNFIT,
    INT64: _as_int64,
    FLOAT64: _as_float64,
}


def _unfit(stats: CoercionStats | None, where: str, empty: Any) -> Any:
    if stats is not None:
        stats.note(where)
    return empty


# -- comparing with an existing table ---------------------------------------------------------------
def compare(expected: Sequence[Column], existing: Sequence[Column], prefix: str = "") -> tuple[list[str], list[Column]]:
    """(conflicts, missing columns) of ``existing`` against what the sink will write.

    A conflict is a type or repetition change, or a REQUIRED column the sink would leave empty.
    Missing NULLABLE columns can be added to the table.
    """
    conflicts: list[str] = []
    missing: list[Column] = []
    have = {c.name.lower(): c for c in existing}
    for col in expected:
        name = f"{prefix}{col.name}"
        old = have.pop(col.name.lower(), None)
        if old is None:
            missing.append(col)
            continue
        old_type, new_type = normalise_type(old.type), normalise_type(col.type)
        if old_type != new_type or old.repeated != col.repeated:
            conflicts.append(f"column {name!r} is {_describe(old)} in the table but the results need "
                             f"{_describe(col)}")
        elif old.mode == REQUIRED and col.mode == NULLABLE:
            conflicts.append(f"column {name!r} is REQUIRED in the table but may be NULL in the results")
        elif new_type == RECORD:
            sub_conflicts, sub_missing = compare(col.fields, old.fields, f"{name}.")
            conflicts += sub_conflicts
            if sub_missing:
                missing.append(replace(col, fields=tuple(sub_missing)))
    conflicts += [f"column {prefix}{c.name!r} is REQUIRED in the table but the sink never fills it"
                  for c in have.values() if c.mode == REQUIRED]
    return conflicts, missing


def _describe(col: Column) -> str:
    return f"{col.mode} {normalise_type(col.type)}" if col.repeated else normalise_type(col.type)


def with_additions(existing: Sequence[Column], additions: Sequence[Column]) -> list[Column]:
    """``existing`` plus the missing columns (and missing RECORD sub-fields) from :func:`compare`."""
    out = list(existing)
    for add in additions:
        index = next((i for i, c in enumerate(out) if c.name.lower() == add.name.lower()), None)
        if index is None:
            out.append(add)
        else:
            old = out[index]
            out[index] = replace(old, fields=tuple(with_additions(old.fields, add.fields)))
    return out


# -- google-cloud-bigquery conversion ----------------------------------------------------------------
def to_schema_fields(columns: Sequence[Column]) -> list[Any]:
    from google.cloud.bigquery import SchemaField

    def field(c: Column) -> Any:
        if c.description:
            return SchemaField(c.name, c.type, mode=c.mode, fields=to_schema_fields(c.fields),
                               description=c.description)
        return SchemaField(c.name, c.type, mode=c.mode, fields=to_schema_fields(c.fields))

    return [field(c) for c in columns]


def from_schema_fields(fields: Sequence[Any]) -> list[Column]:
    return [Column(f.name, normalise_type(f.field_type), (f.mode or NULLABLE).upper(),
                   tuple(from_schema_fields(f.fields or ())), f.description or "") for f in fields]
