"""The field-only fast path of rendering gives exactly what the sandboxed Jinja template gives."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from decimal import Decimal
from typing import Any

import pytest
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from airflow_llm_batch.pipeline.field_template import FieldTemplate
from airflow_llm_batch.pipeline.render import RequestRenderer, RequestSpec, RowError

JINJA = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)

FAST_TEMPLATES = [
    "{{ row.text }}",
    "Classify: {{ row.text }}",
    "{{ row['text'] }} / {{ row.other }}\n",
    "  {{row.text}}{{ row.other }}  \n\n",
    "{{- row.text -}}  |  {{ row.other }}",
    "Subject: {{ row.text }}\nBody: {{ row[\"other\"] }}{# a comment #} end",
    "{% raw %}{{ not a field }}{% endraw %} {{ row.text }}",
    "{{ row['items'] }}",  # item lookup tries the field before the dict attribute
    "é 日本 \U0001f600 {{ row.text }}",
]
JINJA_ONLY_TEMPLATES = [
    "{{ row.text | upper }}",
    "{{ row.text ~ '!' }}",
    "{% if row.text %}{{ row.text }}{% endif %}",
    "{{ ds }} {{ row.text }}",
    "{{ row.items }}",
    "{{ row.text.strip() }}",
    "{{ row.__class__ }}",
    "{{ row[0] }}",
    "{{ row }}",
    "{{ 'x' }}",
]
TRICKY_VALUES: list[Any] = [
    "plain", "", " ", None, 0, -1, 3.0, 1e-07, 2.5e300, float("nan"), True, False, 10**30, Decimal("1.10"),
    "{{ 1+1 }}", "{% for x in y %}", "{#", "}}", "<b>&amp;</b>", "line\nbreak\ttab\r", "\x00\x7f",
    "é 日本 \U0001f600", "\u2028", "'quotes\" and \\ backslash", ["a", 1], {"k": "v"}, ("t",),
]


def jinja(template: str, row: Any, **context: Any) -> str:
    return str(JINJA.from_string(template).render(row=row, **context))


@pytest.mark.parametrize("template", FAST_TEMPLATES)
def test_fast_templates_are_recognised(template: str) -> None:
    assert FieldTemplate.of(JINJA, template) is not None


@pytest.mark.parametrize("template", JINJA_ONLY_TEMPLATES)
def test_anything_but_row_fields_keeps_jinja(template: str) -> None:
    assert FieldTemplate.of(JINJA, template) is None


@pytest.mark.parametrize("template", FAST_TEMPLATES)
def test_fast_path_output_is_byte_identical_to_jinja(template: str) -> None:
    fast = FieldTemplate.of(JINJA, template)
    assert fast is not None
    for text, other in itertools.product(TRICKY_VALUES, TRICKY_VALUES[:12]):
        row = {"text": text, "other": other, "items": text}
        assert fast.render(row) == jinja(template, row), (template, row)


@pytest.mark.parametrize("value", TRICKY_VALUES)
def test_request_renderer_prompt_equals_jinja(value: Any) -> None:
    spec = RequestSpec(model="m", prompt="Say {{ row.text }} to {{ row['who'] }}", key="id")
    row = {"id": "1", "text": value, "who": "you"}
    assert RequestRenderer(spec).render(row, "c1", "1").prompt == jinja(spec.prompt, row)


def test_missing_field_error_is_jinja_s() -> None:
    spec = RequestSpec(model="m", prompt="Say {{ row.text }}", key="id")
    with pytest.raises(RowError) as fast:
        RequestRenderer(spec).render({"id": "1"}, "c1", "1")
    assert str(fast.value) == ("prompt template field missing: 'dict object' has no attribute 'text' "
                               "(a column of this row)")


def test_rows_that_are_not_plain_dicts_render_through_jinja() -> None:
    fast = FieldTemplate.of(JINJA, "{{ row.text }}")
    assert fast is not None
    assert fast.render(OrderedDict(text="x")) is None
    assert fast.render({"other": "x"}) is None
    spec = RequestSpec(model="m", prompt="{{ row.text }}", key="id")
    assert RequestRenderer(spec).render(OrderedDict(id="1", text="y"), "c1", "1").prompt == "y"


def test_renderer_uses_the_fast_path_for_field_only_prompts() -> None:
    """The spec is inspected once: a field-only prompt gets the fast form, a filter keeps Jinja."""
    fast = RequestRenderer(RequestSpec(model="m", prompt="{{ row['text'] }}", key="id"))
    assert fast._prompt_fast is not None
    slow = RequestRenderer(RequestSpec(model="m", prompt="{{ row['text'] | string }}", key="id"))
    assert slow._prompt_fast is None


@pytest.mark.parametrize("value", ["", " ", "\t\n", "\u3000", None])
def test_an_empty_key_is_a_row_error(value: Any) -> None:
    renderer = RequestRenderer(RequestSpec(model="m", prompt="{{ row.text }}", key="id"))
    with pytest.raises(RowError, match="key column 'id' is empty"):
        renderer.key_of({"id": value, "text": "x"})


@pytest.mark.parametrize(("value", "key"), [(" a ", " a "), (7, "7"), (2.5, "2.5"), ("T-1", "T-1")])
def test_a_key_is_the_column_as_text(value: Any, key: str) -> None:
    renderer = RequestRenderer(RequestSpec(model="m", prompt="{{ row.text }}", key="id"))
    assert renderer.key_of({"id": value, "text": "x"}) == key
