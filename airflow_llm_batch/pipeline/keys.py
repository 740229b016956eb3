"""Duplicate detection over any number of rows in bounded memory (an SQLite file on local disk)."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from types import TracebackType


class KeyRegistry:
    """Collects (custom_id, key, row number) and reports ids seen more than once.

    Rows are inserted in pages; the check is one GROUP BY at the end, so memory stays flat
    whether there are a thousand rows or ten million.
    """

    _PAGE = 20_000

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="llm-batch-keys-")
        self._db = sqlite3.connect(os.path.join(self._dir.name, "keys.db"))
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE ids (custom_id TEXT, key TEXT, row_no INTEGER)")
        self._page: list[tuple[str, str, int]] = []

    def add(self, custom_id: str, key: str, row_no: int) -> None:
        page = self._page
        page.append((custom_id, key, row_no))
        if len(page) >= self._PAGE:
            self._flush()

    def _flush(self) -> None:
        if self._page:
            self._db.executemany("INSERT INTO ids VALUES (?, ?, ?)", self._page)
            self._page.clear()

    def duplicates(self, limit: int = 20) -> tuple[int, list[tuple[list[str], list[int]]]]:
        """Return (number of duplicated ids, first `limit` of them as (their distinct keys, row numbers)).

        One key means the same key on several rows; several keys mean different keys that the
        provider's id rules map to one custom_id (e.g. Anthropic's safe-id substitute).
        """
        self._flush()
        (extra,) = self._db.execute("SELECT COUNT(*) - COUNT(DISTINCT custom_id) FROM ids").fetchone()
        if not extra:
            return 0, []  # the usual case: one scan, no grouping
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM (SELECT custom_id FROM ids GROUP BY custom_id HAVING COUNT(*) > 1)"
        ).fetchone()
        self._db.execute("CREATE INDEX ids_by_custom_id ON ids (custom_id)")
        rows = self._db.execute(
            "SELECT custom_id, GROUP_CONCAT(row_no) FROM ids GROUP BY custom_id HAVING COUNT(*) > 1"
            " ORDER BY MIN(row_no) LIMIT ?",
            (limit,),
        ).fetchall()
        return int(count), [(self._keys_of(custom_id), [int(n) for n in nos.split(",")][:10])
                            for custom_id, nos in rows]

    def _keys_of(self, custom_id: str) -> list[str]:
        found = self._db.execute("SELECT DISTINCT key FROM ids WHERE custom_id = ? ORDER BY key LIMIT 10",
                                 (custom_id,)).fetchall()
        return [str(key) for (key,) in found]

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()

    def __enter__(self) -> KeyRegistry:
        return self

    def __exit__(self, *exc: tuple[type[BaseException], BaseException, TracebackType] | None) -> None:
        self.close()
