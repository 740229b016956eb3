"""The one JSON encoder/decoder of the row-proportional hot loops (request lines, key index entries,
result lines, landed rows): orjson, compiled, with the standard library as the fallback.

``dumps`` gives compact UTF-8 JSON (no spaces, non-ASCII kept as is) as ``bytes``; for the values a
row carries (str, int, float, bool, None, lists, dicts with str keys) it equals
``json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()`` except for the spelling of
floats written with an exponent (``1e-07`` is written ``1e-7``: the same number). Anything orjson
refuses (an int beyond 64 bits, a non-str dict key, a lone surrogate) goes through ``json`` instead;
values neither knows are written as ``str(value)`` (dates as ``2024-01-02 03:04:05``, as before).
``loads`` reads what ``json.loads`` reads, into the same values.

Not used for request fingerprints: those are hashed from ``json.dumps(sort_keys=True)`` bytes, whose
float spelling must never change (fingerprint.py).

Example::

    >>> dumps({"a": "é", "b": [1, 2.5, None]})
    b'{"a":"\\xc3\\xa9","b":[1,2.5,null]}'
    >>> loads(b'{"a": 1}')
    {'a': 1}
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

#: dates/times and dataclasses go to ``default`` (str), like json.dumps(default=str) did
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_NEWLINE = _OPTIONS | orjson.OPT_APPEND_NEWLINE
#: the options of ``dumps_line`` (with ``default=str``), for a hot loop that calls orjson itself and
#: ``dumps_line`` only when orjson refuses the value (TypeError)
LINE_OPTIONS = _NEWLINE

#: 19 digits in a row may be an integer beyond 64 bits, which orjson reads as a float. Found with
#: ``bytes.translate`` (ASCII digits -> "0", every other byte -> ".") and a substring search, both in C:
#: ~10x cheaper per line than the regular expression ``[0-9]{19}`` it replaces (same lines match)
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else 0x2E for b in range(256))
_LONG_NUMBER = b"0" * 19


def loads(data: bytes | str) -> Any:
    """The JSON value of ``data``; raises ValueError (a json.JSONDecodeError) on bad input. Integers
    of any size stay exact (a line holding 19 digits in a row is read by ``json``)."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) >= 19 and _LONG_NUMBER in raw.translate(_DIGITS_AS_ZERO):
        return json.loads(raw)
    return orjson.loads(raw)


#: ``loads`` without the guard for integers beyond 64 bits: such a number may come back as a float (see
#: ``json_lines.json_object(exact_integers=False)`` for where that is harmless). orjson's own function, not a
#: wrapper: called once per answer line, and a Python call costs ~0.1 us there; raises ValueError likewise
loads_inexact: Callable[[bytes | str], Any] = orjson.loads


def dumps(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON bytes."""
    try:
        return orjson.dumps(value, default=str, option=_OPTIONS)
    except TypeError:
        return _fallback(value).encode("utf-8", "surrogatepass")


def dumps_line(value: Any) -> bytes:
    """``dumps(value)`` plus ``b"\\n"``: one JSON Lines line."""
    try:
        return orjson.dumps(value, default=str, option=_NEWLINE)
    except TypeError:
        return (_fallback(value) + "\n").encode("utf-8", "surrogatepass")


def _fallback(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
