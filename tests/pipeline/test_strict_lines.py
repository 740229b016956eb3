"""pipeline/strict_lines: the rules the typed line decoders share read numbers as orjson does and fail a
line whose unknown field msgspec would skip unchecked; every answer naming a model shares one string."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import orjson
import pytest

from airflow_llm_batch.backends import anthropic_lines, generate_content_lines, openai_lines
from airflow_llm_batch.pipeline import strict_lines
from airflow_llm_batch.pipeline.strict_lines import DECODE_ERRORS, MAX_MODEL_NAMES, MODEL_NAMES, Float, Int64, Strict
from airflow_llm_batch.pipeline.types import RawResult
from tests.backends.test_anthropic_lines import COMMON as ANTHROPIC_COMMON
from tests.backends.test_generate_content_lines import COMMON as GEMINI_COMMON
from tests.backends.test_openai_lines import COMMON as OPENAI_COMMON


class _Row(Strict):
    count: Int64
    score: Float | None = None


_decode = msgspec.json.Decoder(_Row).decode


@pytest.mark.parametrize("line", [
    b'{"count": 1, "other": 2}', b'{"count": true}', b'{"count": 1.0}', b'{"count": "1"}',
    b'{"count": 9223372036854775808}', b'{"count": -9223372036854775809}', b'{"count": 1, "score": 1e400}',
    b'{"count": 1, "other": "\xff"}', b'{"count": 1}x', b'[' * 2000 + b']' * 2000, b'\xff',
])
def test_a_line_outside_the_rules_fails(line: bytes) -> None:
    with pytest.raises(DECODE_ERRORS):
        _decode(line)


@pytest.mark.parametrize("line", [
    b'{"count": 9223372036854775807}', b'{"count": -9223372036854775808, "score": -1.5e308}',
    b'{"count": 1, "count": 2}', b' {"count": 0, "score": null}\r',
])
def test_a_line_within_the_rules_reads_as_orjson_reads_it(line: bytes) -> None:
    row, document = _decode(line), orjson.loads(line)
    assert (row.count, row.score) == (document["count"], document.get("score"))
    assert type(row.count) is int


def _models(decode: Callable[[bytes], RawResult | None], line: bytes, swap: tuple[bytes, bytes]) -> list[Any]:
    """The model of ``line``'s answer read twice, then of the line with another model name."""
    copies = [decode(bytes(line)), decode(bytes(line)), decode(line.replace(*swap))]
    assert all(answer is not None for answer in copies)
    return [answer.model for answer in copies if answer is not None]


@pytest.mark.parametrize("decode, line, swap", [
    (openai_lines.decode_common_line, OPENAI_COMMON, (b'"gpt-4o-mini"', b'"gpt-4o"')),
    (anthropic_lines.decode_common_line, ANTHROPIC_COMMON, (b'"claude-', b'"claude-x-')),
    (generate_content_lines.decode_common_line, GEMINI_COMMON, (b'"gemini-', b'"gemini-x-')),
], ids=["openai", "anthropic", "gemini"])
def test_every_answer_naming_a_model_shares_one_string_for_it(
        decode: Callable[[bytes], RawResult | None], line: bytes, swap: tuple[bytes, bytes]) -> None:
    assert swap[0] in line
    first, second, other = _models(decode, line, swap)
    assert first == second and first is second  # one string, not one per answer
    assert other != first and MODEL_NAMES[other] is other


def test_past_the_bound_a_new_model_name_is_returned_but_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(strict_lines, "MODEL_NAMES", {f"m{i}": f"m{i}" for i in range(MAX_MODEL_NAMES)})
    name = "".join(["late", "-model"])
    assert strict_lines.shared_model(name) == name and name not in strict_lines.MODEL_NAMES
    assert strict_lines.shared_model(None) is None
    kept = strict_lines.shared_model("".join(["m", "7"]))
    assert kept is strict_lines.MODEL_NAMES["m7"]
