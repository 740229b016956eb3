"""Rows of the emulated Vertex AI batch prediction jobs: read from input lines or table records,
written as predictions.jsonl lines or output table records."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import wire
from .vertex_answers import Prediction
from .vertex_storage import BqField

_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,299}$")
OUTPUT_COLUMNS = ("request", "response", "status", "processed_time")


@dataclass
class VertexRow:
    """One input row: its request, the fields passed through to the output, or why it is unreadable."""

    request: Any
    passthrough: dict[str, Any]
    key: str | None
    broken: str | None = None


Answered = tuple[VertexRow, Prediction, float]
"""An answered row: the row, its prediction and when it was answered."""


def row_from_line(line: bytes) -> VertexRow:
    try:
        document = json.loads(line)
    except ValueError:
        return VertexRow(None, {}, None, "The input line is not valid JSON.")
    if not isinstance(document, dict):
        return VertexRow(None, {}, None, "The input line is not a JSON object.")
    passthrough = {k: v for k, v in document.items() if k != "request"}
    key = passthrough.get("key")
    broken = None if "request" in document else 'The input line has no "request" field.'
    return VertexRow(document.get("request"), passthrough, None if key is None else str(key), broken)


def row_from_record(record: dict[str, Any]) -> VertexRow:
    request = record.get("request")
    passthrough = {k: v for k, v in record.items() if k not in OUTPUT_COLUMNS}
    key = passthrough.get("key")
    broken = None
    if isinstance(request, str):
        try:
            request = json.loads(request)
        except ValueError:
            broken = "The request column does not hold valid JSON."
    return VertexRow(request, passthrough, None if key is None else str(key), broken)


def output_record(row: VertexRow, prediction: Prediction, moment: float) -> dict[str, Any]:
    record: dict[str, Any] = {**row.passthrough, "status": prediction.status, "processed_time": wire.rfc3339(moment),
                              "request": row.request}
    if prediction.response is not None:
        record["response"] = prediction.response
    return record


def output_line(row: VertexRow, prediction: Prediction, moment: float) -> bytes:
    return wire.jsonl_line(output_record(row, prediction, moment))


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    return "STRING" if isinstance(value, str) else "JSON"


def inferred_fields(answered: Iterable[Answered]) -> list[BqField]:
    """Columns for the passed-through fields of JSONL input (their JSON types; mixed types -> JSON)."""
    kinds: dict[str, set[str]] = {}
    for row, _, _ in answered:
        for name, value in row.passthrough.items():
            if _COLUMN.match(name) and name not in OUTPUT_COLUMNS and value is not None:
                kinds.setdefault(name, set()).add(_kind(value))
    fields = []
    for name, found in kinds.items():
        kind = found.pop() if len(found) == 1 else ("FLOAT64" if found == {"INT64", "FLOAT64"} else "JSON")
        fields.append(BqField(name, kind))
    return fields


__all__ = [
    "OUTPUT_COLUMNS", "Answered", "VertexRow", "inferred_fields", "output_line", "output_record", "row_from_line",
    "row_from_record",
]
