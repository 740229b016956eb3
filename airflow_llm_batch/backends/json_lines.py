"""Reading the JSON Lines files providers return: one object per line, a broken line never stops a file.

Example: ``[json_object(line) for line in fh if line.strip()]`` holds None where a line is unreadable.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any, NamedTuple

from airflow_llm_batch.pipeline import fast_json
from airflow_llm_batch.pipeline.types import RawResult

log = logging.getLogger(__name__)


def json_object(line: bytes | str, *, exact_integers: bool = True) -> dict[str, Any] | None:
    """The JSON object on ``line``; None when the line is not JSON or not an object (its row gets no
    answer and ends as ``missing_result``, which the retry policy sends again).

    ``exact_integers=False`` skips ``fast_json.loads``'s guard for integers beyond 64 bits (~1 us less on
    a 1 KB answer line; such a number may come back as a float): for a decoder that reads numbers only
    from small fields (status codes, token counts) and copies no other number into a result."""
    try:
        document = fast_json.loads(line) if exact_integers else fast_json.loads_inexact(line)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def line_object(line: bytes, *, exact_integers: bool = True) -> dict[str, Any] | None:
    """:func:`json_object`, telling a blank line apart: ``{}`` for a blank line (nothing to read), None for
    a broken one (not JSON, or not an object: counted as unreadable)."""
    if not line.strip():
        return {}
    return json_object(line, exact_integers=exact_integers)


async def line_blocks(chunks: AsyncIterable[bytes]) -> AsyncIterator[list[bytes]]:
    """The lines of a downloaded file, as bytes, from its chunks (whatever their boundaries), without the
    ``\n``: a list per chunk that ends a line (a chunk within one long line yields nothing). Cheaper per
    line than an HTTP client's text lines (no decoding to str and back: orjson and msgspec read bytes),
    and than a line per ``yield`` (an async generator's step costs ~0.2 us, once per chunk here); a
    ``\r`` before the ``\n`` stays, which JSON reads as whitespace."""
    pending = b""
    async for chunk in chunks:
        if b"\n" not in chunk:
            pending += chunk
            continue
        *lines, rest = (pending + chunk).split(b"\n")
        pending = rest
        yield lines
    if pending:
        yield [pending]


class LineReader(NamedTuple):
    """How one provider's results lines are read: ``common`` reads the common line straight from its bytes
    (None for any other line), ``other`` reads any other line (None: blank or broken), ``line_object``
    tells a broken line (None) from a blank one (``{}``). Made when a file is read, from the functions the
    backend's module holds then."""

    common: Callable[[bytes], RawResult | None]
    other: Callable[[bytes], RawResult | None]
    line_object: Callable[[bytes], dict[str, Any] | None]


def read_lines(lines: list[bytes], reader: LineReader) -> tuple[list[RawResult], int]:
    """(the answers of ``lines`` in their order, how many lines were broken). A blank line has none."""
    common, other, line_object = reader
    answers: list[RawResult] = []
    add, broken = answers.append, 0
    for line in lines:
        answer = common(line)
        if answer is None:
            answer = other(line)
            if answer is None:  # blank, or broken (read again: such lines are rare)
                broken += line_object(line) is None
                continue
        add(answer)
    return answers, broken


async def answer_blocks_of(chunks: AsyncIterable[bytes], reader: LineReader,
                           where: str) -> AsyncIterator[list[RawResult]]:
    """The answers of a downloaded results file, a list per chunk that ends a line (never an empty list). A
    broken line never stops the file: its row gets no answer (``missing_result``, sent again by the retry
    policy); the broken lines are counted and logged once, naming ``where`` (the file and batch)."""
    broken = 0
    async for lines in line_blocks(chunks):
        answers, unreadable = read_lines(lines, reader)
        broken += unreadable
        if answers:
            yield answers
    if broken:
        log.warning("Skipped %d unreadable line(s) in %s", broken, where)
