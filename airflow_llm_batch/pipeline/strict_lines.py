"""The shared parts of the typed msgspec decoders of common answer lines (``openai_lines``,
``generate_content_lines``): each reads the common line of its provider straight from its bytes and
leaves any other line to the general decoder (orjson + dict reading), which must then give the same
answer. Shared here so both read a line under the same rules:

- :class:`Strict`: every field of a line is declared and an unknown one fails the line
  (``forbid_unknown_fields``): msgspec skips an unknown field's value without checking all of it (an
  invalid UTF-8 string or a number beyond the float range, such as ``1e400``, passes), where orjson
  refuses the whole line. Declared fields are checked as orjson checks them: strings for UTF-8,
  numbers for their range (:data:`Int64`, :data:`Float`); msgspec's ``int`` takes no bool and no float.
  A key given twice keeps its last value, as in orjson (an earlier value of the wrong type fails the
  line). A provider adding a field to its lines only makes them slower (the general way).
- :data:`DECODE_ERRORS`: what msgspec raises for a line it does not read (not JSON, not the common
  line, not UTF-8, nested deeper than its limit, which is lower than orjson's).
- :data:`MODEL_NAMES` / :func:`shared_model`: the model name of an answer as ONE string per name
  (``MODEL_NAMES.get(name) or shared_model(name)``): every answer of a batch names the same model, and a
  decoder makes a new string for each; sharing one keeps it in the CPU cache when the results are written
  (~0.2 us per row less on a 50,000-answer chunk) and saves ~70 bytes per held answer.
"""

from __future__ import annotations

import sys
from typing import Annotated

import msgspec


class Strict(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A JSON object of a common line: an unknown key fails the line (no cyclic GC: plain data)."""


#: 64-bit integers, which orjson reads exactly (beyond them it gives a float, or refuses the line): any
#: other integer fails the line (msgspec's bounds must fit an int64; orjson's reach 2**64 - 1)
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
#: a float within the float range (orjson refuses a line with a number beyond it)
Float = Annotated[float, msgspec.Meta(ge=-sys.float_info.max, le=sys.float_info.max)]
DECODE_ERRORS = (msgspec.MsgspecError, ValueError, RecursionError)


#: model names seen in answers, each kept as one string (at most MAX_MODEL_NAMES: a provider naming a new
#: model per answer only goes without the sharing)
MODEL_NAMES: dict[str | None, str] = {}
MAX_MODEL_NAMES = 256


def shared_model(name: str | None) -> str | None:
    """``name`` as the one string kept for it (None stays None); see the module."""
    if name is None:
        return None
    known = MODEL_NAMES.get(name)
    if known is not None:
        return known
    if len(MODEL_NAMES) < MAX_MODEL_NAMES:
        MODEL_NAMES[name] = name
    return name
