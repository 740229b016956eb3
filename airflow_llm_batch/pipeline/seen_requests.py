"""The request fingerprints a run has already routed (routing.py): which rows repeat an earlier row's
request and so follow it instead of being sent again.

The first ``IN_MEMORY`` fingerprints are kept in a set (~0.1 µs per lookup); past that the set is
moved to an SQLite file on local disk and every later page is looked up and added there (a query per
500 fingerprints, one insert per page, a bounded page cache), so memory stays flat for any row count.

Example::

    >>> seen = SeenRequests()
    >>> list(seen.new_among(["aa", "bb", "aa"])), list(seen.new_among(["bb", "cc"]))
    (['aa', 'bb'], ['cc'])
    >>> seen.close()
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Sequence

#: fingerprints kept in memory before they move to SQLite (~16 MiB of 64-character strings)
IN_MEMORY = 131_072
#: fingerprints per SQLite query (below SQLite's bound on query parameters)
_QUERY = 500
#: SQLite page cache, in KiB: a bound on memory, and about twice as fast as the 2 MiB default once
#: ~30k fingerprints are stored (one B-tree: no rowid table beside the key's index)
_CACHE_KIB = 16_384


class SeenRequests:
    """A set of fingerprints with bounded memory, asked and filled a page at a time."""

    def __init__(self, in_memory: int = IN_MEMORY) -> None:
        self._limit = in_memory
        self._memory: set[str] | None = set()
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._db: sqlite3.Connection | None = None

    def new_among(self, fps: Sequence[str]) -> dict[str, None]:
        """The fingerprints of ``fps`` not seen before (each once, in order of first appearance);
        all of ``fps`` count as seen afterwards."""
        new = dict.fromkeys(fps)
        if self._memory is not None:
            for fp in self._memory.intersection(new):
                del new[fp]
            self._memory.update(new)
            if len(self._memory) > self._limit:
                self._spill(self._memory)
            return new
        db = self._open()
        unique = list(new)
        for start in range(0, len(unique), _QUERY):
            window = unique[start:start + _QUERY]
            for (fp,) in db.execute(f"SELECT fp FROM seen WHERE fp IN ({','.join('?' * len(window))})", window):
                del new[fp]
        db.executemany("INSERT INTO seen VALUES (?)", ((fp,) for fp in sorted(new)))  # in key order: fewer pages
        return new

    def _spill(self, memory: set[str]) -> None:
        self._open().executemany("INSERT INTO seen VALUES (?)", ((fp,) for fp in sorted(memory)))
        self._memory = None

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            self._dir = tempfile.TemporaryDirectory(prefix="llm-batch-fps-")
            self._db = sqlite3.connect(os.path.join(self._dir.name, "fps.db"))
            self._db.execute("PRAGMA journal_mode=OFF")
            self._db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
            self._db.execute("CREATE TABLE seen (fp TEXT PRIMARY KEY) WITHOUT ROWID")
        return self._db

    def close(self) -> None:
        self._memory = set()
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
