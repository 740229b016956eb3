"""Turn input rows into provider-neutral requests with a sandboxed Jinja template.

Row values are data: they are passed to the template as ``row`` and printed as text; a value that
itself looks like ``{{ ... }}`` is never evaluated.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jinja2 import StrictUndefined, TemplateError, UndefinedError, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.pipeline.field_template import FieldTemplate
from airflow_llm_batch.pipeline.types import Endpoint, LLMRequest

_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


class RowError(Exception):
    """Why one row cannot become a request (collected, then reported together)."""


@dataclass(frozen=True)
class RequestSpec:
    """Everything that turns a row into a request, apart from the row itself."""

    model: str
    prompt: str
    endpoint: Endpoint = Endpoint.CHAT
    system_prompt: str | None = None
    key: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    response_schema: dict[str, Any] | None = None
    schema_name: str = "result"
    json_output: bool = False
    context: dict[str, Any] = field(default_factory=dict)


def row_hash(row: Mapping[str, Any]) -> str:
    """A stable id for a row without a key column: the same row always gets the same id."""
    canonical = json.dumps(row, sort_keys=True, default=str, ensure_ascii=False)
    return "h" + hashlib.sha256(canonical.encode()).hexdigest()[:20]


class RequestRenderer:
    """Compiles the templates once and renders rows one at a time.

    Example: ``RequestRenderer(RequestSpec(model="m", prompt="Classify: {{ row.text }}", key="id"))``
    """

    def __init__(self, spec: RequestSpec) -> None:
        self.spec = spec
        try:
            self._prompt = _ENV.from_string(spec.prompt)
            # a prompt that only prints row fields renders without Jinja (field_template.py)
            self._prompt_fast = FieldTemplate.of(_ENV, spec.prompt)
            self._system = _ENV.from_string(spec.system_prompt) if spec.system_prompt else None
            # a system prompt that does not mention `row` is the same for every row: render it once
            self._system_per_row = spec.system_prompt is not None and "row" in meta.find_undeclared_variables(
                _ENV.parse(spec.system_prompt))
        except TemplateError as exc:
            raise InvalidInputError(f"prompt or system_prompt template does not compile: {exc}; fix its "
                                    f"Jinja syntax (nothing was submitted)") from exc
        check_scope(spec)
        self._system_once: str | None = None

    def key_of(self, row: Mapping[str, Any]) -> str:
        column = self.spec.key
        if column is None:
            return row_hash(row)
        if column not in row:
            raise RowError(f"key column {column!r} is missing")
        value = row[column]
        if type(value) is str:  # the usual case: no isinstance, no str() copy
            if value and not value.isspace():
                return value
            raise RowError(f"key column {column!r} is empty")
        if value is None or (isinstance(value, str) and not value.strip()):
            raise RowError(f"key column {column!r} is empty")
        return str(value)

    def render(self, row: Mapping[str, Any], custom_id: str, key: str) -> LLMRequest:
        if not isinstance(row, Mapping):
            raise RowError(f"row is a {type(row).__name__}, expected a mapping of column -> value")
        prompt = self._prompt_fast.render(row) if self._prompt_fast is not None else None
        if prompt is None:
            prompt = self._render(self._prompt, row, "prompt", self.spec.context)
        if not prompt.strip():
            raise RowError("prompt renders empty")
        return self.request(custom_id, key, prompt, self._system_text(row))

    def request(self, custom_id: str, key: str, prompt: str, system: str | None) -> LLMRequest:
        """The request of a row whose prompt and system prompt are rendered."""
        spec = self.spec
        return LLMRequest(custom_id=custom_id, key=key, model=spec.model, endpoint=spec.endpoint, prompt=prompt,
                          system_prompt=system, params=spec.params, response_schema=spec.response_schema,
                          schema_name=spec.schema_name, json_output=spec.json_output)

    @property
    def fast_prompt(self) -> FieldTemplate | None:
        """The prompt's field-only form when the prompt is all that changes from row to row (the system
        prompt does not use the row), else None."""
        return None if self._system_per_row else self._prompt_fast

    def fixed_request(self, custom_id: str, key: str, prompt: str) -> LLMRequest:
        """The request of any row with this custom_id, key and prompt (only when ``fast_prompt`` is set)."""
        return self.request(custom_id, key, prompt, self._system_text({}))

    def _system_text(self, row: Mapping[str, Any]) -> str | None:
        if self._system is None:
            return None
        if self._system_per_row:
            return self._render(self._system, row, "system_prompt", self.spec.context)
        if self._system_once is None:
            self._system_once = self._render(self._system, {}, "system_prompt", self.spec.context)
        return self._system_once

    @staticmethod
    def _render(template: Any, row: Mapping[str, Any], what: str, context: Mapping[str, Any]) -> str:
        try:
            return str(template.render(row=row, **context))
        except UndefinedError as exc:
            raise RowError(f"{what} template field missing: {exc.message} (a column of this row)") from exc
        except TemplateError as exc:
            raise RowError(f"{what} template failed: {exc}") from exc


def check_scope(spec: RequestSpec) -> None:
    """Every name a template uses besides ``row`` must be in the task's template context: a missing one
    fails the whole run before anything is sent, named as a context name (not as a row's column)."""
    for what, text in (("prompt", spec.prompt), ("system_prompt", spec.system_prompt)):
        if not text:
            continue
        known = {"row", *spec.context, *_ENV.globals}
        missing = sorted(meta.find_undeclared_variables(_ENV.parse(text)) - known)
        if missing:
            raise InvalidInputError(
                f"{what} uses {missing}, which the task's template context does not have (row values are "
                f"under 'row', e.g. row.{missing[0]}); available: {sorted(spec.context)[:40]} (nothing was submitted)")
