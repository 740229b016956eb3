"""The key index of a chunk: one line per row, mapping the request's custom_id back to the row.

A chunk's ``*.keys.jsonl`` (and the entries inside ``answered/*.jsonl``) hold one :class:`KeyEntry`
per row. The line format is compact, one letter per field, and is read by every later try of the
same task run, so it never changes without a reader for the old lines:

=========  =====================================================  ==================
line key   field                                                  present
=========  =====================================================  ==================
``c``      ``custom_id``: the request's id at the provider         always
``k``      ``key``: the row's key                                  always
``n``      ``row_no``: position of the row in the input            always
``f``      ``fingerprint``: request fingerprint (request cache)    cache on
``a``      ``adopted_id``: the row's custom_id in an adopted batch adopted rows only
``carry``  ``carry``: input columns copied to the result           ``carry=`` set
=========  =====================================================  ==================

Example::

    >>> entry = KeyEntry(custom_id="t_1", key="t 1", row_no=0)
    >>> entry.to_line()
    b'{"c":"t_1","k":"t 1","n":0}\\n'
    >>> KeyEntry.from_line(entry.to_line()) == entry
    True
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from functools import partial
from typing import Any, NamedTuple, cast

import msgspec

from airflow_llm_batch.pipeline import fast_json
from airflow_llm_batch.pipeline.storage import AtomicWriter, StoragePath
from airflow_llm_batch.pipeline.strict_lines import DECODE_ERRORS, Int64, Strict


class KeyEntry(NamedTuple):
    """One row of a chunk: the ids that join its answer back to it (a named tuple: read once per row
    when a chunk is collected, cheaper to make than a frozen dataclass)."""

    custom_id: str
    key: str
    row_no: int
    fingerprint: str | None = None
    #: the custom_id this row has in the batch of an earlier run it waits on (see adopt.py)
    adopted_id: str | None = None
    carry: dict[str, Any] | None = None

    @property
    def answer_id(self) -> str:
        """The custom_id its answer carries: the adopted batch's id for the row, else its own."""
        return self.adopted_id if self.adopted_id is not None else self.custom_id

    def to_json(self) -> dict[str, Any]:
        """The line's JSON object: the required fields always, the optional ones only when set."""
        data: dict[str, Any] = {"c": self.custom_id, "k": self.key, "n": self.row_no}
        if self.adopted_id is None and self.carry is None:  # most rows
            if self.fingerprint is not None:
                data["f"] = self.fingerprint  # the request cache on
            return data
        for key, value in (("f", self.fingerprint), ("a", self.adopted_id), ("carry", self.carry)):
            if value is not None:
                data[key] = value
        return data

    def to_line(self) -> bytes:
        return fast_json.dumps_line(self.to_json())

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KeyEntry:
        """Read a line's object, as written by this version or an earlier one (the same keys)."""
        get, custom_id, key, row_no = data.get, data["c"], data["k"], data.get("n", -1)
        return cls(custom_id if type(custom_id) is str else str(custom_id), key if type(key) is str else str(key),
                   row_no if type(row_no) is int else int(row_no), get("f"), get("a"), get("carry"))

    @classmethod
    def from_line(cls, line: bytes | str) -> KeyEntry:
        return cls.from_json(fast_json.loads(line))

    def with_fingerprint(self, fingerprint: str) -> KeyEntry:
        return self._replace(fingerprint=fingerprint)

    def adopted_as(self, custom_id: str | None) -> KeyEntry:
        """This entry waiting on an adopted batch under ``custom_id`` (None: sent under its own)."""
        return self._replace(adopted_id=custom_id)


def read_key_index(path: StoragePath) -> Generator[KeyEntry, None, None]:
    """Every entry of a key index file, in row order."""
    read_entry, from_line, new_entry = _read_entry, KeyEntry.from_line, _new_entry
    with path.open("rb") as fh:
        for line in fh:
            # most lines: the fields this version writes, all but carried columns (a str, a str, an int, a
            # str or none, a str or none) read by a typed decoder and made into the entry in one C call; any
            # other line (carried columns: they may hold integers beyond 64 bits; an older layout; a blank
            # line) is read exactly, field by field (``from_json``)
            try:
                entry = read_entry(line)
            except DECODE_ERRORS:
                entry = None
            if entry is not None and entry.carry is None:
                yield new_entry((entry.c, entry.k, entry.n, entry.f, entry.a, None))
            elif line.strip():
                yield from_line(line)


class _Line(Strict):
    """A key index line as this version writes it (``KeyEntry.to_json``); carried columns kept unread."""

    c: str
    k: str
    n: Int64
    f: str | None = None
    a: str | None = None
    carry: msgspec.Raw | None = None


_read_entry = msgspec.json.Decoder(_Line).decode


#: a KeyEntry from its six fields as one tuple, taken as they are (see ``types.raw_result_of``)
_new_entry = cast(Callable[[tuple[Any, ...]], KeyEntry], partial(tuple.__new__, KeyEntry))


def first_entry(path: StoragePath) -> KeyEntry | None:
    """The first entry of a key index file (None when it is empty)."""
    entries = read_key_index(path)
    try:
        return next(entries, None)
    finally:
        entries.close()


def write_key_index(path: StoragePath, entries: Iterable[KeyEntry]) -> None:
    """Write a whole key index file atomically."""
    with AtomicWriter(path) as out:
        for entry in entries:
            out.write(entry.to_line())
