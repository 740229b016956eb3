"""Unit tests of the deterministic model: tokens, markers, embeddings (schema answers: test_emulator_schema_values)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

from airflow_llm_batch.emulator import model


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
