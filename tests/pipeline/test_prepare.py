"""The streaming preparation pass: rendering, validation before payment, chunk planning."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.pipeline.prepare import PrepareOptions, prepare
from airflow_llm_batch.pipeline.render import RequestSpec, row_hash
from airflow_llm_batch.pipeline.types import BatchLimits, LLMRequest

LIMITS = BatchLimits(max_requests=100, max_bytes=10_000, max_request_bytes=2_000)


def line(request: LLMRequest) -> dict[str, object]:
    return {"custom_id": request.custom_id, "prompt": request.prompt, "system": request.system_prompt}


@dataclass
class Format:
    """A backend's line format, as ``prepare`` sees it."""

    limits: BatchLimits = LIMITS
    safe_id: Callable[[str], str] = str

    def request_line(self, request: LLMRequest) -> dict[str, object]:
        return line(request)

    def custom_id_for(self, key: str) -> str:
        return self.safe_id(key)


def run(rows: list[dict], tmp_path: Path, limits: BatchLimits = LIMITS, **spec: object):
    spec_obj = RequestSpec(**{"model": "m", "prompt": "Say {{ row.text }}", "key": "id", **spec})
    return prepare(rows, spec_obj, folder=tmp_path, backend=Format(limits))


def read_lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_renders_rows_as_data_never_as_templates(tmp_path: Path) -> None:
    rows = [{"id": 1, "text": "{{ 7 * 6 }}"}, {"id": 2, "text": "{% for x in y %}"}]
    prepared = run(rows, tmp_path, system_prompt="Run {{ ds }}", context={"ds": "2026-11-22"})
    lines = read_lines(tmp_path / prepared.chunks[0].requests)
    assert [x["prompt"] for x in lines] == ["Say {{ 7 * 6 }}", "Say {% for x in y %}"]
    assert lines[0]["system"] == "Run 2026-11-22"


def test_sandbox_blocks_attribute_escapes(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="row 0"):
        run([{"id": 1, "text": "x"}], tmp_path, prompt="{{ row.__class__.__mro__[1].__subclasses__() }}")


def test_missing_field_duplicate_key_and_empty_prompt_are_reported_together(tmp_path: Path) -> None:
    rows = [{"id": 1, "text": "a"}, {"id": 2}, {"id": 1, "text": "b"}, {"id": 3, "text": "  "}]
    with pytest.raises(InvalidInputError) as info:
        run(rows, tmp_path, prompt="{{ row.text }}")
    message = str(info.value)
    assert "3 of 4 rows are invalid" in message
    assert "row 1 (key '2'): prompt template field missing" in message and "'text'" in message
    assert "duplicate key '1' on rows 0, 2" in message
    assert "row 3 (key '3'): prompt renders empty" in message
    assert "nothing was submitted" in message


def test_missing_key_column_and_oversize_request(tmp_path: Path) -> None:
    rows = [{"text": "a"}, {"id": 2, "text": "x" * 3_000}]
    with pytest.raises(InvalidInputError) as info:
        run(rows, tmp_path)
    assert "row 0: key column 'id' is missing" in str(info.value)
    assert "row 1 (key '2'): request is" in str(info.value) and "over the provider's limit of 2,000" in str(info.value)


def test_empty_input_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="input is empty"):
        run([], tmp_path)


def test_chunks_by_count(tmp_path: Path) -> None:
    rows = [{"id": i, "text": "t"} for i in range(250)]
    prepared = run(rows, tmp_path)
    assert [c.count for c in prepared.chunks] == [100, 100, 50]
    all_ids = [x["custom_id"] for c in prepared.chunks for x in read_lines(tmp_path / c.requests)]
    assert all_ids == [str(i) for i in range(250)]


def test_chunks_by_bytes(tmp_path: Path) -> None:
    rows = [{"id": i, "text": "y" * 900} for i in range(30)]
    prepared = run(rows, tmp_path)
    assert len(prepared.chunks) >= 3
    for chunk in prepared.chunks:
        size = (tmp_path / chunk.requests).stat().st_size
        assert size == chunk.bytes <= LIMITS.max_bytes
    assert sum(c.count for c in prepared.chunks) == 30


def test_key_index_maps_custom_ids_back_to_keys(tmp_path: Path) -> None:
    rows = [{"id": "a b", "text": "t", "team": "x"}]
    spec = RequestSpec(model="m", prompt="{{ row.text }}", key="id")
    prepared = prepare(rows, spec, folder=tmp_path, backend=Format(safe_id=lambda k: k.replace(" ", "_")),
                       options=PrepareOptions(carry=("team",)))
    (entry,) = read_lines(tmp_path / prepared.chunks[0].keys)
    assert entry == {"c": "a_b", "k": "a b", "n": 0, "carry": {"team": "x"}}


def test_rows_without_key_get_stable_hash_ids(tmp_path: Path) -> None:
    rows = [{"text": "a"}, {"text": "b"}]
    prepared = run(rows, tmp_path, key=None)
    ids = [x["custom_id"] for x in read_lines(tmp_path / prepared.chunks[0].requests)]
    assert ids == [row_hash({"text": "a"}), row_hash({"text": "b"})]
    assert row_hash({"b": 1, "a": 2}) == row_hash({"a": 2, "b": 1})


def test_digest_tracks_content(tmp_path: Path) -> None:
    a = run([{"id": 1, "text": "a"}], tmp_path / "a")
    b = run([{"id": 1, "text": "a"}], tmp_path / "b")
    c = run([{"id": 1, "text": "changed"}], tmp_path / "c")
    assert a.digest == b.digest != c.digest
    two = [{"id": 1, "text": "a"}, {"id": 2, "text": "b"}]
    assert run(two, tmp_path / "d").digest == run(two[::-1], tmp_path / "e").digest
    assert asdict(a.chunks[0])["count"] == 1
