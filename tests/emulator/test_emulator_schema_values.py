"""Unit tests of the schema-derived answers of the emulated model (:mod:`emulator.schema_values`)."""

from __future__ import annotations

import datetime as dt
import enum
import json
from typing import Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field

from airflow_llm_batch.emulator import gemini_answers, vertex_answers
from airflow_llm_batch.emulator.schema_values import (
    MAX_SCHEMA_DEPTH,
    default_range,
    formatted_string,
    numeric_bounds,
    openapi_to_json_schema,
    pick_branch,
    schema_answer,
    type_of,
)


class Color(str, enum.Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class Address(BaseModel):
    city: str = Field(max_length=5)
    zip_code: int = Field(ge=10000, le=99999)


class Person(BaseModel):
    name: str
    favourite: Color
    age: int = Field(ge=18, lt=30)
    score: float = Field(gt=0.5, lt=0.75)
    active: bool
    address: Address
    tags: list[str]
    nickname: str | None = None
    kind: Literal["human"]
    born: dt.datetime
    mood: Literal["happy", "sad", "calm"] = "calm"


class TreeNode(BaseModel):
    label: str
    children: list[TreeNode] = []


def test_schema_answer_validates_against_a_pydantic_model() -> None:
    schema = Person.model_json_schema()
    value = schema_answer(schema, "Marie Curie")
    person = Person.model_validate(value)  # raises if invalid
    jsonschema.validate(value, schema)
    assert person.name == "Marie Curie"
    assert person.address.city == "Marie"  # cut to maxLength 5
    assert 18 <= person.age < 30
    assert 0.5 < person.score < 0.75
    assert person.tags == ["Marie Curie"]
    assert person.kind == "human"


def test_schema_answer_is_deterministic_and_depends_on_the_prompt() -> None:
    schema = Person.model_json_schema()
    assert schema_answer(schema, "same") == schema_answer(schema, "same")
    colours = {schema_answer(schema, f"prompt {i}")["favourite"] for i in range(40)}
    assert colours == {"red", "green", "blue"}
    ages = {schema_answer(schema, f"prompt {i}")["age"] for i in range(40)}
    assert len(ages) > 3


def test_schema_answer_handles_recursive_models() -> None:
    value = schema_answer(TreeNode.model_json_schema(), "root")
    node = TreeNode.model_validate(value)
    depth = 0
    while node.children:
        node = node.children[0]
        depth += 1
    assert 1 <= depth <= 10


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "integer", "multipleOf": 7, "minimum": 10, "maximum": 40},
        {"type": "integer", "exclusiveMinimum": 5, "exclusiveMaximum": 7},
        {"type": "number", "minimum": 1, "maximum": 1},
        {"type": "string", "minLength": 50},
        {"type": "string", "format": "email"},
        {"type": "string", "format": "uuid"},
        {"type": "array", "items": {"type": "boolean"}, "minItems": 3, "maxItems": 4},
        {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}]},
        {"type": "object", "additionalProperties": {"type": "integer"}, "minProperties": 2},
        {"type": ["null", "integer"]},
        {"const": 42},
        {
            "allOf": [
                {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                {"properties": {"b": {"type": "string"}}, "required": ["b"]},
            ]
        },
        {"oneOf": [{"type": "null"}, {"type": "string", "maxLength": 2}]},
    ],
)
def test_schema_answer_validates_against_json_schema_keywords(schema: dict[str, object]) -> None:
    value = schema_answer(schema, "a prompt text")
    jsonschema.validate(value, schema, format_checker=jsonschema.FormatChecker())


def test_default_is_used_when_a_schema_has_no_type() -> None:
    assert schema_answer({"default": [1, 2]}, "x") == [1, 2]
    assert schema_answer({}, "echo") == "echo"




def test_default_range_fills_a_missing_end_a_span_away() -> None:
    assert default_range(None, None, 100) == (0, 100)
    assert default_range(None, 5, 100) == (-95, 5)
    assert default_range(7, None, 100) == (7, 107)
    assert default_range(3, 1, 100) == (3, 1)  # both given: kept even when empty
    low, high = default_range(None, None, 100.0)
    assert (low, high) == (0.0, 100.0) and isinstance(low, float)


@pytest.mark.parametrize(
    ("schema", "bounds"),
    [
        ({}, (None, False, None, False)),
        ({"minimum": 1, "maximum": 3}, (1, False, 3, False)),
        ({"minimum": 1, "exclusiveMinimum": True, "maximum": 3, "exclusiveMaximum": True}, (1, True, 3, True)),
        ({"exclusiveMinimum": True, "exclusiveMaximum": True}, (None, False, None, False)),  # draft 4 flag alone
        ({"minimum": 1, "exclusiveMinimum": 2, "maximum": 9, "exclusiveMaximum": 8}, (2, True, 8, True)),
        ({"minimum": 5, "exclusiveMinimum": 2, "maximum": 6, "exclusiveMaximum": 8}, (5, False, 6, False)),
    ],
)
def test_numeric_bounds_read_every_draft(schema: dict[str, object], bounds: tuple[object, ...]) -> None:
    assert numeric_bounds(schema) == bounds


def test_formatted_string_knows_the_common_formats_only() -> None:
    assert formatted_string("date", 0) == "2020-01-01"
    assert formatted_string("email", 123_456) == "user23456@example.com"
    assert formatted_string("ipv4", 0x030201) == "10.1.2.3"
    assert formatted_string("pattern-less", 1) is None and formatted_string(None, 1) is None


def test_type_of_reads_type_lists_and_guesses_from_keywords() -> None:
    assert type_of({"type": ["null", "integer"]}) == "integer"
    assert type_of({"type": ["null"]}) == "null"
    assert type_of({"type": []}) is None
    assert type_of({"additionalProperties": {}}) == "object"
    assert type_of({"prefixItems": []}) == "array"
    assert type_of({"default": 1}) is None


def test_pick_branch_prefers_non_null_until_too_deep() -> None:
    branches = [{"type": "null"}, {"type": "string"}]
    assert pick_branch(branches, 0) == {"type": "string"}
    assert pick_branch(branches, MAX_SCHEMA_DEPTH) == {"type": "null"}
    assert pick_branch([{"type": "integer"}], MAX_SCHEMA_DEPTH) == {"type": "integer"}  # nothing nullable
    assert pick_branch([{"type": "null"}], 0) == {"type": "null"}


def test_ref_target_keywords_yield_to_the_referring_schema() -> None:
    schema = {"$defs": {"A": {"type": "integer", "minimum": 3, "maximum": 3}}, "$ref": "#/$defs/A", "maximum": 4}
    assert schema_answer(schema, "x") in (3, 4)
    assert schema_answer({"$ref": "#/$defs/missing"}, "echo") == "echo"
    assert schema_answer({"$ref": "#/x~1y", "x/y": {"const": 1}}, "t") == 1


def test_openapi_schemas_become_json_schema() -> None:
    openapi = {
        "type": "OBJECT",
        "propertyOrdering": ["tags", "pick"],
        "properties": {
            "tags": {"type": "ARRAY", "items": {"type": "STRING", "nullable": True}, "minItems": "2"},
            "pick": {"any_of": [{"type": "INTEGER"}, {"type": "NULL"}]},
            "one": {"oneOf": [{"type": "BOOLEAN"}]},
        },
        "required": ["tags", "pick", "one"],
    }
    assert openapi_to_json_schema(openapi) == {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": ["string", "null"]}, "minItems": 2},
            "pick": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "one": {"oneOf": [{"type": "boolean"}]},
        },
        "required": ["tags", "pick", "one"],
    }
    assert openapi_to_json_schema([{"type": "NUMBER"}, 3]) == [{"type": "number"}, 3]


def _gemini_text(request: dict[str, object]) -> str:
    kind, body = gemini_answers.answer(request, model_name="models/gemini", seed="s")
    assert kind == "response"
    return str(body["candidates"][0]["content"]["parts"][0]["text"])


def _vertex_text(request: dict[str, object]) -> str:
    prediction = vertex_answers.predict(request, model_name="gemini", seed="s", created="2026-01-01T00:00:00Z")
    assert prediction.ok and prediction.response is not None
    return str(prediction.response["candidates"][0]["content"]["parts"][0]["text"])


def test_gemini_and_vertex_read_a_response_schema_the_same_way() -> None:
    schema = {
        "type": "OBJECT",
        "properties": {"choice": {"oneOf": [{"type": "OBJECT", "properties": {"n": {"type": "INTEGER"}}}]},
                       "tags": {"type": "ARRAY", "items": {"any_of": [{"type": "BOOLEAN"}]}, "minItems": "2"}},
        "required": ["choice", "tags"],
    }
    request = {
        "contents": [{"role": "user", "parts": [{"text": "pick one"}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseSchema": schema},
    }
    gemini, vertex = json.loads(_gemini_text(request)), json.loads(_vertex_text(request))
    assert gemini == vertex  # both providers: one converter (they used to differ on oneOf / any_of / sizes)
    jsonschema.validate(gemini, openapi_to_json_schema(schema))
    assert isinstance(gemini["choice"]["n"], int) and len(gemini["tags"]) == 2
    assert all(isinstance(tag, bool) for tag in gemini["tags"])
