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
