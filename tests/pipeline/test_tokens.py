"""Prompt-token estimates: the kernel on each provider's request format, the fallback, and in real Airflow
an estimate within 25% of what the emulator bills on 1,000 English rows."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

import pytest

from airflow_llm_batch.emulator import model
from airflow_llm_batch.pipeline import token_count, tokens
from airflow_llm_batch.pipeline.tokens import estimate_tokens
from tests.airflow_helpers import run_dag, task_states, xcom

SYSTEM, PROMPT = "Judge the item.", "Item 7: the printer on the third floor is on fire again."
WORDS = ("the customer said that our delivery arrived late and the box was damaged but the support team "
         "answered quickly and offered a refund which was accepted after a short call about the order "
         "invoice shipping address payment account password reset mobile app crashes when opening settings").split()


def english_rows(count: int = 1_000) -> list[dict[str, str]]:
    """Deterministic English support tickets of 8 to 60 words."""
    rnd = random.Random(15)
    rows = []
    for i in range(count):
        words = [rnd.choice(WORDS) for _ in range(rnd.randint(8, 60))]
        rows.append({"id": f"e{i:04d}", "text": " ".join(words).capitalize() + "."})
    return rows


def line(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode() + b"\n"


@pytest.mark.parametrize("request_line", [
    line({"custom_id": "c1", "method": "POST", "url": "/v1/chat/completions", "body": {
        "model": "gpt-4o-mini", "messages": [{"role": "system", "content": SYSTEM},
                                             {"role": "user", "content": PROMPT}]}}),
    line({"custom_id": "c1", "params": {"model": "claude-haiku-4-5", "max_tokens": 100, "system": SYSTEM,
                                        "messages": [{"role": "user", "content": PROMPT}]}}),
    line({"key": "c1", "request": {"systemInstruction": {"parts": [{"text": SYSTEM}]},
                                   "contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}}),
], ids=["openai", "anthropic", "gemini"])
def test_estimate_is_the_emulators_count_for_each_request_format(request_line: bytes) -> None:
    assert estimate_tokens(request_line) == model.prompt_tokens([SYSTEM, PROMPT])
    assert estimate_tokens(request_line) * 2 < len(request_line) / tokens.BYTES_PER_TOKEN  # far below bytes/3


def test_schema_texts_count_but_ids_model_and_roles_do_not() -> None:
    base = {"custom_id": "x" * 200, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}]}}
    with_schema = json.loads(json.dumps(base))
    with_schema["body"]["response_format"] = {"type": "json_schema", "json_schema": {
        "name": "Verdict", "schema": {"type": "object", "properties": {"label": {"type": "string",
                                                                                 "description": "one word"}}}}}
    assert estimate_tokens(line(base)) == model.prompt_tokens([PROMPT])
    assert estimate_tokens(line(with_schema)) == model.prompt_tokens([PROMPT]) + token_count.count_text_tokens(
        "one word")


def test_a_line_that_is_not_json_falls_back_to_bytes_over_three_and_says_so(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "_warned", [])
    caplog.set_level(logging.WARNING, logger="airflow_llm_batch")
    assert estimate_tokens(b"not json at all, 33 bytes long..") == 11
    assert estimate_tokens(b"x" * 30) == 10
    assert caplog.text.count("bytes/3 upper bound") == 1


def test_the_tokenizer_loads_without_network_access() -> None:
    assert token_count.tokenizer_name() == "cl100k_base"
    assert token_count.count_text_tokens("The quick brown fox jumps over the lazy dog.") == 10


@pytest.mark.usefixtures("emulator", "airflow_db")
def test_estimate_is_within_25_percent_of_the_emulators_count_on_1000_english_rows(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in english_rows()))
    dag_run = run_dag("llmb_operator", {"rows": f"file://{rows}", "destination": f"file://{tmp_path}/out.jsonl",
                                        "workspace": f"file://{tmp_path}/ws"})
    assert task_states(dag_run) == {"batch": "success"}
    summary = xcom(dag_run, "batch")
    estimated, billed = summary["estimate"]["input_tokens"], summary["usage"]["input_tokens"]
    assert summary["succeeded"] == 1_000 and billed > 20_000
    assert abs(estimated - billed) <= 0.25 * billed, (estimated, billed)


def test_a_schema_shared_by_every_line_is_counted_once_and_the_same_as_a_copy() -> None:
    """The strict schema is one object for a whole run: remembered by identity, the estimate of every
    line still equals the estimate of the same line with its own copy of the schema."""
    import copy

    schema = {"type": "object", "additionalProperties": False, "required": [f"f{i}" for i in range(20)],
              "properties": {f"f{i}": {"type": "string", "description": f"field number {i} of the answer"}
                             for i in range(20)}}

    def document(i: int, shared: dict[str, Any]) -> dict[str, Any]:
        return {"custom_id": f"c{i}", "body": {"model": "m", "messages": [{"role": "user", "content": f"row {i}"}],
                                               "response_format": {"type": "json_schema", "json_schema": {
                                                   "name": "Answer", "schema": shared, "strict": True}}}}

    tokens._SHARED.clear()
    expected = [tokens.estimate_document_tokens(document(i, copy.deepcopy(schema))) for i in range(5)]
    assert all(id(item) != id(schema) for item, _ in tokens._SHARED.values())
    assert [tokens.estimate_document_tokens(document(i, schema)) for i in range(5)] == expected
    assert any(item is schema for item, _ in tokens._SHARED.values())  # it was remembered...
    assert len(tokens._SHARED) <= tokens._SHARED_MAX  # ... in a bounded memo
    assert expected[0] > 20 * 5  # the schema's descriptions are counted, not skipped
