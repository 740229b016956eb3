"""JSON schema -> typed columns, value coercion and schema comparison (pure functions)."""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from airflow_llm_batch.google.bq_schema import (
    CoercionStats,
    Column,
    SchemaMappingError,
    coerce,
    columns_from_json_schema,
    compare,
    with_additions,
)


class Priority(str, Enum):
    low = "low"
    high = "high"


class Detail(BaseModel):
    note: str
    count: int


class Node(BaseModel):
    name: str
    children: list[Node] = []


class Answer(BaseModel):
    label: str = Field(description="short label")
    score: int
    ratio: float
    ok: bool
    priority: Priority
    kind: Literal["a", "b"]
    level: Literal[1, 2, 3]
    tags: list[str]
    details: list[Detail]
    detail: Detail
    optional_detail: Detail | None = None
    maybe: int | None = None
    number_or_int: int | float = 0
    meta: dict[str, int]
    grid: list[list[int]]
    mixed: int | str = 0
    tree: Node


def shape(columns: list[Column]) -> dict[str, Any]:
    return {c.name: (c.type, c.mode, shape(list(c.fields)) if c.fields else None) for c in columns}


def test_pydantic_model_maps_to_typed_columns() -> None:
    cols = shape(columns_from_json_schema(Answer.model_json_schema()))
    assert cols["label"] == ("STRING", "NULLABLE", None)
    assert cols["score"] == ("INT64", "NULLABLE", None)
    assert cols["ratio"] == ("FLOAT64", "NULLABLE", None)
    assert cols["ok"] == ("BOOL", "NULLABLE", None)
    assert cols["priority"] == cols["kind"] == ("STRING", "NULLABLE", None)
    assert cols["level"] == ("INT64", "NULLABLE", None)
    assert cols["tags"] == ("STRING", "REPEATED", None)
    detail = {"note": ("STRING", "NULLABLE", None), "count": ("INT64", "NULLABLE", None)}
    assert cols["details"] == ("RECORD", "REPEATED", detail)
    assert cols["detail"] == cols["optional_detail"] == ("RECORD", "NULLABLE", detail)
    assert cols["maybe"] == ("INT64", "NULLABLE", None)
    assert cols["number_or_int"] == ("FLOAT64", "NULLABLE", None)
    assert cols["meta"] == cols["grid"] == cols["mixed"] == ("JSON", "NULLABLE", None)
    # a recursive model stops growing: deep levels become JSON
    tree = cols["tree"]
    assert tree[0] == "RECORD" and tree[2]["children"][0] == "RECORD"
    assert next(iter(columns_from_json_schema(Answer.model_json_schema()))).description == "short label"


def test_hand_written_schema_with_type_lists_and_extra_properties() -> None:
    schema = {"type": "object", "properties": {
        "a": {"type": ["string", "null"]},
        "free": {"type": "object", "properties": {"x": {"type": "string"}}, "additionalProperties": True},
        "anything": {},
    }}
    assert shape(columns_from_json_schema(schema)) == {
        "a": ("STRING", "NULLABLE", None), "free": ("JSON", "NULLABLE", None),
        "anything": ("JSON", "NULLABLE", None)}


def test_extra_allowed_pydantic_model_becomes_json() -> None:
    class Loose(BaseModel):
        model_config = ConfigDict(extra="allow")
        x: int

    class Outer(BaseModel):
        loose: Loose

    assert shape(columns_from_json_schema(Outer.model_json_schema()))["loose"] == ("JSON", "NULLABLE", None)


def test_invalid_names_and_non_object_schemas_are_refused() -> None:
    with pytest.raises(SchemaMappingError, match="first-name"):
        columns_from_json_schema({"type": "object", "properties": {"first-name": {"type": "string"}}})
    with pytest.raises(SchemaMappingError, match="not an object"):
        columns_from_json_schema({"type": "array", "items": {"type": "string"}})


def test_coerce_shapes_values_and_nulls_what_does_not_fit() -> None:
    stats = CoercionStats()
    rec = Column("d", "RECORD", fields=(Column("n", "INT64"), Column("tags", "STRING", "REPEATED")))
    assert coerce({"n": 3.0, "tags": ["a", None], "unknown": 1}, rec, stats) == {"n": 3, "tags": ["a"]}
    assert coerce(None, Column("t", "STRING", "REPEATED")) == []
    assert coerce(2, Column("f", "FLOAT64")) == 2.0
    assert coerce({"a": 1}, Column("j", "JSON")) == {"a": 1}
    assert coerce({"a": 1}, Column("s", "STRING")) == '{"a": 1}'
    assert coerce("x", Column("n", "INT64"), stats) is None
    assert coerce(True, Column("n", "INT64"), stats) is None
    assert coerce("yes", Column("b", "BOOL"), stats) is None
    assert stats.nulled == {"n": 2, "b": 1}


def test_compare_names_conflicts_and_missing_columns() -> None:
    expected = [Column("key", "STRING", "REQUIRED"), Column("score", "INT64"),
                Column("d", "RECORD", fields=(Column("a", "STRING"), Column("b", "INT64"))),
                Column("new", "STRING")]
    existing = [Column("key", "STRING"), Column("score", "STRING"),
                Column("d", "RECORD", fields=(Column("a", "STRING"),)),
                Column("legacy", "INTEGER", "REQUIRED")]
    conflicts, missing = compare(expected, existing)
    assert any("'score' is STRING in the table but the results need INT64" in c for c in conflicts)
    assert any("'legacy' is REQUIRED" in c for c in conflicts)
    assert [m.name for m in missing] == ["d", "new"] and [f.name for f in missing[0].fields] == ["b"]
    merged = with_additions(existing, missing)
    assert [c.name for c in merged] == ["key", "score", "d", "legacy", "new"]
    assert [f.name for f in merged[2].fields] == ["a", "b"]
    assert compare([Column("x", "INT64")], [Column("x", "INTEGER")]) == ([], [])
