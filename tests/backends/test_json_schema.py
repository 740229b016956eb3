"""strict_object_schema: the schema OpenAI's strict mode accepts, built as the openai SDK's own
``to_strict_json_schema`` builds it from a pydantic model (compared on real pydantic schemas)."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from openai.lib._pydantic import to_strict_json_schema
from pydantic import BaseModel, Field

from airflow_llm_batch.backends.json_schema import strict_object_schema


class Address(BaseModel):
    city: str
    zip_code: str | None = None


class Person(BaseModel):
    name: str = Field(description="full name")
    nickname: str | None = None
    home: Address = Field(description="where they live")  # a $ref with a sibling keyword
    past: list[Address] = []
    kind: Literal["a", "b"] | None = None


class Tree(BaseModel):
    label: str
    children: list[Tree] = []


@pytest.mark.parametrize("model", [Address, Person, Tree])
def test_same_schema_as_the_openai_sdk_builds(model: type[BaseModel]) -> None:
    assert strict_object_schema(model.model_json_schema()) == to_strict_json_schema(model)


def test_null_defaults_dropped_ref_siblings_inlined_objects_closed() -> None:
    strict = strict_object_schema(Person.model_json_schema())
    nickname = strict["properties"]["nickname"]
    assert "default" not in nickname and {"type": "null"} in nickname["anyOf"]
    home = strict["properties"]["home"]
    assert "$ref" not in home and home["description"] == "where they live"
    assert home["additionalProperties"] is False and home["required"] == ["city", "zip_code"]
    assert strict["required"] == ["name", "nickname", "home", "past", "kind"]
    assert strict["$defs"]["Address"]["additionalProperties"] is False


def test_the_input_is_left_untouched_and_plain_refs_stay() -> None:
    schema: dict[str, Any] = {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}},
                              "$defs": {"A": {"type": "object", "properties": {"x": {"type": "integer"}}}}}
    before = repr(schema)
    strict = strict_object_schema(schema)
    assert repr(schema) == before
    assert strict["properties"]["a"] == {"$ref": "#/$defs/A"}


def test_a_remote_or_dangling_reference_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="only local references"):
        strict_object_schema({"type": "object", "properties": {"a": {"$ref": "http://x/s.json", "title": "A"}}})
    with pytest.raises(ValueError, match="points at nothing"):
        strict_object_schema({"type": "object", "properties": {"a": {"$ref": "#/$defs/B", "title": "A"}}})
