"""Direct tests of the OpenAI input-file parser (:func:`emulator.openai_input.parse_input_file`)."""

from __future__ import annotations

import json
from typing import Any

from airflow_llm_batch.emulator.config import EmulatorConfig
from airflow_llm_batch.emulator.openai_input import parse_input_file

CHAT = "/v1/chat/completions"


def _line(custom_id: Any, model: str = "gpt", **overrides: Any) -> bytes:
    line = {"custom_id": custom_id, "method": "POST", "url": CHAT, "body": {"model": model, "messages": []}}
    return json.dumps({**line, **overrides}).encode()


def _codes(data: bytes, config: EmulatorConfig | None = None) -> list[tuple[str, int | None, str | None]]:
    parsed = parse_input_file(data, CHAT, config or EmulatorConfig())
    return [(e["code"], e["line"], e["param"]) for e in parsed.errors]


def test_a_line_refused_for_its_model_still_claims_its_custom_id() -> None:
    data = b"\n".join([_line("a"), _line("b", model="other"), _line("b")])
    parsed = parse_input_file(data, CHAT, EmulatorConfig())
    assert [(e["code"], e["line"], e["param"]) for e in parsed.errors] == [
        ("mismatched_model", 2, "body.model"),
        ("duplicate_custom_id", 3, "custom_id"),
    ]
    assert [row.custom_id for row in parsed.rows] == ["a"] and parsed.model == "gpt"
    assert parsed.custom_ids == ["a", "b", "b"]  # every submitted custom_id, refused or not


def test_each_field_problem_names_its_line_and_param() -> None:
    lines = [
        _line("a", method=""),
        _line(7),
        _line("c", body=[1]),
        _line("d", method="GET"),
        _line("e", url="/v1/embeddings"),
        b"[1]",
        b"{oops",
        _line("f", url="/chat/completions?api-version=1"),  # Azure style names the same endpoint
    ]
    assert _codes(b"\n".join(lines)) == [
        ("missing_required_parameter", 1, "method"),
        ("invalid_value", 2, "custom_id"),
        ("invalid_value", 3, "body"),
        ("invalid_method", 4, "method"),
        ("invalid_url", 5, "url"),
        ("invalid_json_line", 6, None),
        ("invalid_json_line", 7, None),
    ]


def test_file_level_limits() -> None:
    assert _codes(b"\n \n") == [("empty_file", None, None)]
    assert _codes(_line("a"), EmulatorConfig(max_batch_file_bytes=10)) == [("file_too_large", None, None)]
    many = b"\n".join(_line(f"r{i}") for i in range(3))
    parsed = parse_input_file(many, CHAT, EmulatorConfig(max_requests_per_batch=2))
    assert [e["code"] for e in parsed.errors] == ["too_many_requests"]
    assert len(parsed.rows) == 3  # still read: row-level errors are reported too
