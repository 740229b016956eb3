"""Unit tests of the deterministic model: tokens, markers, schema-derived answers, embeddings."""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import subprocess
import sys
from typing import Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field

from airflow_llm_batch.emulator import model


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


def test_count_tokens_uses_the_estimates_tokenizer_at_least_one() -> None:
    # cl100k_base counts (pipeline/token_count.py): "abcde" is two tokens, "hello world" two, 400 x's fifty
    assert model.count_tokens("") == 1
    assert model.count_tokens("abcd") == 1
    assert model.count_tokens("abcde") == 2
    assert model.count_tokens("hello world") == 2
    assert model.count_tokens("x" * 400) == 50
    assert model.prompt_tokens(["abcd", "abcde"]) == 1 + 2 + 2 * model.MESSAGE_OVERHEAD_TOKENS


def test_content_text_accepts_strings_and_part_lists() -> None:
    assert model.content_text("hi") == "hi"
    parts = [
        {"type": "text", "text": "a"},
        {"type": "image_url", "image_url": {"url": "x"}},
        {"type": "input_text", "text": "b"},
    ]
    assert model.content_text(parts) == "a\nb"
    assert model.content_text(None) == ""


def test_markers_are_found() -> None:
    assert model.parse_markers("plain") == model.Markers()
    assert (
        model.parse_markers("x [[emulator:error:rate_limit_exceeded]] y").error_code == "rate_limit_exceeded"
    )
    assert model.parse_markers("[[emulator:truncate]]").truncate
    assert model.truncate_answer("abcdef") == "abc"


def test_stable_hash_is_the_same_in_another_process() -> None:
    code = "from airflow_llm_batch.emulator import model; print(model.stable_hash('a', 'b'))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(other.stdout) == model.stable_hash("a", "b")
    assert model.stable_hash("a", "b") != model.stable_hash("ab")


def test_schema_answer_validates_against_a_pydantic_model() -> None:
    schema = Person.model_json_schema()
    value = model.schema_answer(schema, "Marie Curie")
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
    assert model.schema_answer(schema, "same") == model.schema_answer(schema, "same")
    colours = {model.schema_answer(schema, f"prompt {i}")["favourite"] for i in range(40)}
    assert colours == {"red", "green", "blue"}
    ages = {model.schema_answer(schema, f"prompt {i}")["age"] for i in range(40)}
    assert len(ages) > 3


def test_schema_answer_handles_recursive_models() -> None:
    value = model.schema_answer(TreeNode.model_json_schema(), "root")
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
    value = model.schema_answer(schema, "a prompt text")
    jsonschema.validate(value, schema, format_checker=jsonschema.FormatChecker())


def test_default_is_used_when_a_schema_has_no_type() -> None:
    assert model.schema_answer({"default": [1, 2]}, "x") == [1, 2]
    assert model.schema_answer({}, "echo") == "echo"


def test_embedding_vectors_are_unit_norm_and_deterministic() -> None:
    first = model.embedding_vector("hello", 16)
    assert len(first) == 16
    assert math.isclose(math.sqrt(sum(v * v for v in first)), 1.0, rel_tol=1e-9)
    assert model.embedding_vector("hello", 16) == first
    assert model.embedding_vector("hello!", 16) != first
    assert len(model.embedding_vector("hello", 100)) == 100


def test_dumps_compact_round_trips() -> None:
    value = {"a": "é", "b": [1, 2]}
    assert json.loads(model.dumps_compact(value)) == value
