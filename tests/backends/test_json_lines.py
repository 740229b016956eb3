"""Reading providers' JSON Lines files: lines from downloaded chunks, whatever the chunk boundaries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from airflow_llm_batch.backends.json_lines import byte_lines, json_object, line_object


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def _lines(data: bytes, size: int) -> list[bytes]:
    async def collect() -> list[bytes]:
        return [line async for line in byte_lines(_chunks(data, size))]

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
