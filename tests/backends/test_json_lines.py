"""Reading providers' JSON Lines files: lines from downloaded chunks, whatever the chunk boundaries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from airflow_llm_batch.backends.json_lines import (
    LineReader,
    answer_blocks_of,
    json_object,
    line_blocks,
    line_object,
    read_lines,
)
from airflow_llm_batch.pipeline.types import RawResult


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def _lines(data: bytes, size: int) -> list[bytes]:
    async def collect() -> list[bytes]:
        return [line async for lines in line_blocks(_chunks(data, size)) for line in lines]

    return asyncio.run(collect())


def test_lines_come_out_whole_whatever_the_chunk_boundaries() -> None:
    data = '{"custom_id":"a","text":"é ✓"}\n\n{"custom_id":"b"}\r\nnot json\n{"custom_id":"c"}'.encode()
    expected = data.split(b"\n")
    for size in (1, 2, 3, 7, 16, len(data), 1 << 16):
        assert _lines(data, size) == expected, size
    documents = [json_object(line) for line in expected if line.strip()]
    assert documents == [{"custom_id": "a", "text": "é ✓"}, {"custom_id": "b"}, None, {"custom_id": "c"}]


def test_a_final_newline_gives_no_empty_last_line_and_an_empty_file_no_line() -> None:
    assert _lines(b'{"a":1}\n{"a":2}\n', 4) == [b'{"a":1}', b'{"a":2}']
    assert _lines(b"", 4) == []


def test_a_line_object_tells_a_blank_line_from_a_broken_one() -> None:
    """{} for a blank line (nothing to read), None for a broken one (counted as unreadable), the object else."""
    assert [line_object(line) for line in (b"", b"  \r", b"{}", b"{broken", b"[1]", b'"x"', b'{"a": 1}')] == [
        {}, {}, {}, None, None, None, {"a": 1}]
    big = b'{"n": 123456789012345678901234567890}'
    assert line_object(big) == {"n": 123456789012345678901234567890}  # exact by default
    assert isinstance((line_object(big, exact_integers=False) or {})["n"], float)


def _blocks(data: bytes, size: int) -> list[list[bytes]]:
    async def collect() -> list[list[bytes]]:
        return [lines async for lines in line_blocks(_chunks(data, size))]

    return asyncio.run(collect())


def test_line_blocks_are_the_lines_a_list_per_chunk_that_ends_one() -> None:
    data = b'{"a":1}\n{"a":2}\n\n{"a":3}\n{"a":' + b"4" * 40 + b"}"
    for size in (1, 5, 8, 30, len(data)):
        blocks = _blocks(data, size)
        assert [line for block in blocks for line in block] == data.split(b"\n"), size
        assert all(blocks)  # a chunk inside a line yields no empty list
    assert len(_blocks(data, 30)) < len(data.split(b"\n"))  # several lines in a block
    assert _blocks(data, len(data)) == [data.split(b"\n")[:-1], [data.split(b"\n")[-1]]]


def _answer(line: bytes) -> RawResult | None:
    document = line_object(line)
    return RawResult(custom_id=str(document["id"]), ok=True, text="x") if document else None


#: the common reader takes lines starting with ``{"id"``, the other one reads the rest
READER = LineReader(lambda line: _answer(line) if line.startswith(b'{"id"') else None, _answer, line_object)


def test_read_lines_gives_the_answers_in_order_and_counts_only_broken_lines() -> None:
    lines = [b'{"id": 1}', b"", b"  ", b"{broken", b'{"x": 0, "id": 2}', b"[1]", b'{"id": 3}']
    answers, broken = read_lines(lines, READER)
    assert [a.custom_id for a in answers] == ["1", "2", "3"] and broken == 2


def test_answer_blocks_skip_empty_lists_and_log_the_broken_lines_once(caplog: pytest.LogCaptureFixture) -> None:
    data = b'{"id": 1}\n{broken\n\n{"id": 2}\nnot json\n{"id": 3}\n'

    async def collect() -> list[list[RawResult]]:
        return [block async for block in answer_blocks_of(_chunks(data, 11), READER, "file f of batch b")]

    with caplog.at_level(logging.WARNING):
        blocks = asyncio.run(collect())
    assert all(blocks) and [a.custom_id for block in blocks for a in block] == ["1", "2", "3"]
    assert [(r.msg, r.args) for r in caplog.records] == [("Skipped %d unreadable line(s) in %s",
                                                          (2, "file f of batch b"))]
