"""Parse answer text as plain text, JSON, a pydantic model or a JSON schema; failures are per row."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from pydantic import BaseModel, ValidationError

ResponseFormat = None | str | type[BaseModel] | dict[str, Any]


class OutputError(Exception):
    """The answer does not parse or validate; the row fails with code ``invalid_output``."""


class OutputParser:
    """Knows the expected shape of every answer of a batch.

    Example: ``OutputParser(Ticket).parse('{"category": "billing", ...}')`` returns a dict.
    """

    def __init__(self, response_format: ResponseFormat = None) -> None:
        self.model: type[BaseModel] | None = None
        self.schema: dict[str, Any] | None = None
        self.name = "result"
        self.mode = "text"
        if response_format is None or response_format == "text":
            return
        if response_format == "json":
            self.mode = "json"
        elif isinstance(response_format, type) and issubclass(response_format, BaseModel):
            self.mode, self.model = "model", response_format
            self.schema, self.name = response_format.model_json_schema(), response_format.__name__
        elif isinstance(response_format, dict):
            self.mode = "schema"
            self.schema = response_format.get("schema", response_format)
            self.name = str(response_format.get("name", self.schema.get("title", "result")))
            jsonschema.Draft202012Validator.check_schema(self.schema)
            self._validator = jsonschema.Draft202012Validator(self.schema)
        else:
            raise ValueError(
                f"response_format must be None, 'text', 'json', a pydantic model class or a JSON schema "
                f"dict, not {response_format!r}"
            )

    def parse(self, text: str) -> Any:
        if self.mode == "text":
            return None
        try:
            if self.model is not None:
                return self.model.model_validate_json(text).model_dump(mode="json")
            value = json.loads(text)
        except ValidationError as exc:
            raise OutputError(_short_validation(exc)) from exc
        except json.JSONDecodeError as exc:
            raise OutputError(f"answer is not JSON: {exc.msg} at char {exc.pos}") from exc
        if self.mode == "schema":
            error = jsonschema.exceptions.best_match(self._validator.iter_errors(value))
            if error is not None:
                where = "/".join(map(str, error.absolute_path)) or "(root)"
                raise OutputError(f"answer fails the schema at {where}: {error.message}")
        return value


def _short_validation(exc: ValidationError) -> str:
    parts = [f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors()[:3]]
    more = f" (+{exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
    return "answer fails the model: " + "; ".join(parts) + more
