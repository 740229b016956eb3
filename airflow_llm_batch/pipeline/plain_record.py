"""The results record of a plain row that succeeded, as a msgspec struct encoded in one C call.

Most rows of a chunk are plain: no carried columns, a text answer that ended with ``stop``, nothing to
parse. The join makes their record as a :class:`PlainRecord` instead of a dict: a struct is built from
positional values (no key hashing) and msgspec's encoder writes it into the results file's buffer
(``answered.write_results``) without a bytes object per line. Join + write of 100,000 plain rows went
from 0.26-0.29 to 0.22-0.24 CPU-s (bench/prepare_and_parse.py --plain, issue 12).

Its line is byte for byte the line ``fast_json.dumps`` writes for :meth:`PlainRecord.to_dict` (the
keys in ``ResultRow.to_dict`` order, then ``fingerprint`` and ``cost_usd`` when set): both encoders
write strings, ints, bools and null alike, and floats alike below 1e16 (``1e16`` is ``1e+16`` in orjson;
a cost that high is not a cost). A value the encoder refuses (a string with a lone surrogate) makes
:func:`encode_record` fall back to the dict and ``fast_json`` (tests/pipeline/test_plain_record.py).

Example::

    >>> record = PlainRecord("k1", "succeeded", "yes", None, None, PlainUsage(3, 1, 0, 4), "m", "b1", "c1", 1,
    ...                      False, "batch")
    >>> encode_record(record)[:48]
    b'{"key":"k1","status":"succeeded","output":"yes",'
"""

from __future__ import annotations

from typing import Any

import msgspec

from airflow_llm_batch.pipeline import fast_json
from airflow_llm_batch.pipeline.types import RowStatus


class PlainUsage(msgspec.Struct, gc=False):
    """The ``usage`` of a plain record (``Usage.to_dict``'s keys, in its order)."""

    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    total_tokens: int


class PlainRecord(msgspec.Struct, gc=False):
    """A results record laid out as ``ResultRow.to_dict`` writes it; ``fingerprint`` (the request cache
    on) and ``cost_usd`` (priced at collect; None: the model has no price) are written only when set."""

    key: str
    status: str
    output: Any
    parsed: Any
    error: Any
    usage: PlainUsage
    model: str | None
    batch_id: str | None
    custom_id: str
    attempts: int
    cached: bool
    answered_by: str
    fingerprint: str | msgspec.UnsetType = msgspec.UNSET
    cost_usd: float | msgspec.UnsetType | None = msgspec.UNSET

    def to_dict(self) -> dict[str, Any]:
        """The record as the dict the join's other records are (the same keys in the same order)."""
        record: dict[str, Any] = msgspec.to_builtins(self)
        return record

    @property
    def priced(self) -> bool:
        return self.cost_usd is not msgspec.UNSET


#: the encoder of plain records (``answered.write_results`` calls its ``encode_into`` itself, in its hot loop)
PLAIN_ENCODER = msgspec.json.Encoder()
#: what the encoder raises for a value it will not write (a lone surrogate): the record goes by fast_json
PLAIN_REFUSED = (UnicodeEncodeError, TypeError, OverflowError)
#: the status of every plain record
PLAIN_STATUS = RowStatus.SUCCEEDED.value


def encode_record(record: PlainRecord) -> bytes:
    """The record's results line, without its newline (see the module)."""
    try:
        return PLAIN_ENCODER.encode(record)
    except PLAIN_REFUSED:
        return fast_json.dumps(record.to_dict())
