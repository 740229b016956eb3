"""Reading the JSON Lines files providers return: one object per line, a broken line never stops a file.

Example: ``[json_object(line) for line in fh if line.strip()]`` holds None where a line is unreadable.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from airflow_llm_batch.pipeline import fast_json


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


async def byte_lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """The lines of a downloaded file, as bytes, from its chunks (whatever their boundaries), without the
    ``\n``. Cheaper per line than an HTTP client's text lines (no decoding to str and back: orjson reads
    bytes); a ``\r`` before the ``\n`` stays, which JSON reads as whitespace."""
    pending = b""
    async for chunk in chunks:
        if b"\n" not in chunk:
            pending += chunk
            continue
        *lines, rest = (pending + chunk).split(b"\n")
        pending = rest
        for line in lines:
            yield line
    if pending:
        yield pending
