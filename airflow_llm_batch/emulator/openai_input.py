"""Input files of the emulated OpenAI Batch API: parsing and validation, done once per batch.

:func:`parse_input_file` decodes every line, checks it against the batch endpoint and the
configured limits, and returns the usable rows in processing order (sorted by a hash of the
custom_id, so never input order) together with the validation errors that will fail the batch.
Error codes: see :mod:`.openai_batches`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import model
from .config import EmulatorConfig
from .openai_answers import embedding_inputs

MAX_REPORTED_ERRORS = 100
ALLOWED_ENDPOINTS = frozenset(
    {
        "/v1/responses",
        "/v1/chat/completions",
        "/v1/embeddings",
        "/v1/completions",
        "/v1/moderations",
        "/v1/images/generations",
        "/v1/images/edits",
        "/v1/videos",
    }
)
"""Endpoints the real service accepts for a batch (the emulator answers all but images and videos)."""


def normalize_endpoint(url: str) -> str:
    """``/chat/completions`` (Azure style) and ``/v1/chat/completions`` name the same endpoint."""
    url = url.split("?", 1)[0].rstrip("/")
    return url if url.startswith("/v1/") else "/v1" + (url if url.startswith("/") else "/" + url)


@dataclass
class BatchRow:
    """One request line of an input file."""

    line: int
    custom_id: str
    body: dict[str, Any]


@dataclass
class ParsedInput:
    """The result of parsing and validating an input file once."""

    rows: list[BatchRow] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    custom_ids: list[str] = field(default_factory=list)
    model: str | None = None

    def add_error(self, code: str, message: str, line: int | None = None, param: str | None = None) -> None:
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append({"code": code, "message": message, "param": param, "line": line})


def parse_input_file(data: bytes, endpoint: str, config: EmulatorConfig) -> ParsedInput:
    """Parse and validate an input file once: its rows in processing order, and what is wrong."""
    parsed = ParsedInput()
    seen: set[str] = set()
    embedding_count = 0
    for number, raw in _request_lines(parsed, data, config):
        row = _parse_line(parsed, raw, number, endpoint, seen)
        if row is None:
            continue
        if endpoint == "/v1/embeddings":
            embedding_count += len(embedding_inputs(row.body) or [])
        parsed.rows.append(row)
    if embedding_count > config.max_embedding_inputs_per_batch:
        parsed.add_error(
            "too_many_embedding_inputs",
            f"The batch has {embedding_count} embedding inputs, more than the "
            f"{config.max_embedding_inputs_per_batch} maximum.",
        )
    parsed.rows.sort(key=lambda r: model.short_id(r.custom_id))
    return parsed


def _request_lines(parsed: ParsedInput, data: bytes, config: EmulatorConfig) -> list[tuple[int, bytes]]:
    """The non-blank lines of the file with their numbers; none when the file as a whole is refused."""
    if len(data) > config.max_batch_file_bytes:
        parsed.add_error(
            "file_too_large",
            f"The input file is larger than the {config.max_batch_file_bytes} bytes maximum.",
        )
        return []
    lines = [(number, text) for number, text in enumerate(data.split(b"\n"), start=1) if text.strip()]
    if not lines:
        parsed.add_error("empty_file", "The input file is empty.")
    elif len(lines) > config.max_requests_per_batch:
        limit = config.max_requests_per_batch
        parsed.add_error(
            "too_many_requests",
            f"The input file has {len(lines)} requests, more than the {limit} maximum.",
        )
    return lines


def _parse_line(parsed: ParsedInput, raw: bytes, number: int, endpoint: str, seen: set[str]) -> BatchRow | None:
    """Decode and validate one line; its custom_id counts as submitted whenever it has one."""
    try:
        line = json.loads(raw)
    except ValueError:
        parsed.add_error("invalid_json_line", f"Line {number} is not valid JSON.", number)
        return None
    if not isinstance(line, dict):
        parsed.add_error("invalid_json_line", f"Line {number} is not a JSON object.", number)
        return None
    custom_id = line.get("custom_id")
    if isinstance(custom_id, str) and custom_id:
        parsed.custom_ids.append(custom_id)
    return _check_line(parsed, line, number, endpoint, seen)


_Problem = tuple[str, str, str]
"""(error code, message, param) of a line the batch refuses."""


def _check_line(
    parsed: ParsedInput, line: dict[str, Any], number: int, endpoint: str, seen: set[str]
) -> BatchRow | None:
    """Validate one decoded line; report what is wrong and return the row when usable."""
    problem = _shape_problem(line, number, endpoint)
    custom_id = str(line.get("custom_id"))  # a string whenever there is no problem
    if problem is None and custom_id in seen:
        problem = (
            "duplicate_custom_id", f"The custom_id {custom_id!r} in line {number} is not unique.", "custom_id"
        )
    if problem is None:
        seen.add(custom_id)
        problem = _model_problem(parsed, line["body"], number)
    if problem is not None:
        code, message, param = problem
        parsed.add_error(code, message, number, param)
        return None
    return BatchRow(number, custom_id, line["body"])


def _shape_problem(line: dict[str, Any], number: int, endpoint: str) -> _Problem | None:
    """What is wrong with the line's fields on their own, None when nothing is."""
    for key in ("custom_id", "method", "url", "body"):
        if line.get(key) in (None, ""):
            return "missing_required_parameter", f"Line {number} is missing '{key}'.", key
    method, url = line["method"], line["url"]
    if not isinstance(line["custom_id"], str):
        return "invalid_value", f"Line {number}: 'custom_id' must be a string.", "custom_id"
    if not isinstance(line["body"], dict):
        return "invalid_value", f"Line {number}: 'body' must be an object.", "body"
    if not isinstance(method, str) or method.upper() != "POST":
        return "invalid_method", f"Line {number}: only the POST method is supported.", "method"
    if not isinstance(url, str) or normalize_endpoint(url) != endpoint:
        return "invalid_url", f"Line {number}: url {url!r} does not match the batch endpoint {endpoint}.", "url"
    return None


def _model_problem(parsed: ParsedInput, body: dict[str, Any], number: int) -> _Problem | None:
    """The first row's model becomes the batch's; a row naming another model is refused."""
    row_model = body.get("model")
    if not isinstance(row_model, str) or not row_model:
        return None
    if parsed.model is None:
        parsed.model = row_model
    elif row_model != parsed.model:
        return (
            "mismatched_model",
            f"The model {row_model!r} in line {number} differs from the batch's model "
            f"{parsed.model!r}; a batch must use a single model.",
            "body.model",
        )
    return None


def estimate_prompt_tokens(endpoint: str, body: Mapping[str, Any]) -> int:
    """Prompt tokens a request will use, for the enqueued token limit."""
    if endpoint == "/v1/chat/completions" and isinstance(body.get("messages"), list):
        return model.prompt_tokens(
            model.content_text(m.get("content")) for m in body["messages"] if isinstance(m, Mapping)
        )
    if endpoint in ("/v1/embeddings", "/v1/moderations"):
        return sum(model.count_tokens(t) for t in embedding_inputs(body) or [])
    if endpoint == "/v1/responses":
        value = body.get("input")
        items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        texts = [
            i if isinstance(i, str) else model.content_text(i.get("content"))
            for i in items
            if isinstance(i, (str, Mapping))
        ]
        instructions = body.get("instructions")
        return model.prompt_tokens(([instructions] if isinstance(instructions, str) else []) + texts)
    return model.count_tokens(model.dumps_compact(body))
