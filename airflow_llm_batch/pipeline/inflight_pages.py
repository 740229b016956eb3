"""In-flight records in pages: one JSON Lines file per sent batch, instead of one file per request.

``{inflight root}/pages/{sent_at:011d}-{uuid}.jsonl`` holds one record object per line (the same
objects as the single-record files of inflight.py, which stay readable). A page is written under a
temporary name and moved into place whole. Readers index the pages into an SQLite file on local disk
(flat memory for any number of records), a page once, skipping pages older than the age asked for
by the time in their name.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import tempfile
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from airflow_llm_batch.pipeline import cache_files as files
from airflow_llm_batch.pipeline import fast_json
from airflow_llm_batch.pipeline.storage import AtomicWriter, StoragePath

PAGES_DIR = "pages"
#: fingerprints per SQLite query (below SQLite's bound on query parameters)
_QUERY = 500
#: page records inserted into the index at a time
_INSERT = 5_000


def page_name(sent_at: float) -> str:
    return f"{int(sent_at):011d}-{uuid.uuid4().hex}.jsonl"


def write_page(root: StoragePath, sent_at: float, entries: Iterable[dict[str, Any]]) -> int | None:
    """Write ``entries`` (record objects, each for a checked fingerprint) as one page, streamed a line
    at a time; returns how many were written: 0 for none (no page), None on a storage error (logged by
    the caller, never raised). An error of ``entries`` itself (a record whose fingerprint is not a hex
    digest: ValueError; a key index that cannot be read) is raised, and no page is written.

    Streamed, not joined: each line orjson returns holds a 4 KiB buffer whatever its length, so the
    50,000 lines of a full OpenAI batch held at once took ~196 MiB (bench/README.md, "cachemem")."""
    lines = _lines(entries)
    first = next(lines, None)
    if first is None:
        return 0
    written = 0
    try:
        with AtomicWriter(root / PAGES_DIR / page_name(sent_at)) as fh:
            for line in itertools.chain((first,), lines):
                fh.write(line)
                written += 1
    except _SourceError as bad:  # the temporary file is removed: no page with a part of the batch
        raise bad.error from None
    except Exception:
        return None
    return written


class _SourceError(Exception):
    """An error of the records written, told apart from the storage errors a page write swallows."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _lines(entries: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    source = iter(entries)
    while True:
        try:
            entry = next(source)
            files.check_fingerprint(entry["fingerprint"])
            line = fast_json.dumps_line(entry)
        except StopIteration:
            return
        except Exception as exc:
            raise _SourceError(exc) from None
        yield line


class PageIndex:
    """The records of every page read so far, by fingerprint (the newest send of each kept)."""

    def __init__(self, root: StoragePath) -> None:
        self.folder = root / PAGES_DIR
        self._loaded: set[str] = set()
        self._rows = 0  # records inserted so far (an upper bound on the rows of the table)
        self._lock = threading.Lock()  # one index may serve lookups from several threads
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._conn: sqlite3.Connection | None = None  # made with the first page read (~3 ms: not for none)

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self._dir = tempfile.TemporaryDirectory(prefix="llm-batch-inflight-")
            self._conn = sqlite3.connect(os.path.join(self._dir.name, "pages.db"), check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=OFF")
            self._conn.execute("CREATE TABLE rec (fp TEXT PRIMARY KEY, entry TEXT, sent_at REAL)")
        return self._conn

    def find(self, fps: Sequence[str], oldest: float) -> Iterator[tuple[str, dict[str, Any]]]:
        """(fingerprint, record object) of the newest record of each of ``fps`` in the pages."""
        found: list[tuple[str, str]] = []
        with self._lock:
            self._load_new(oldest)
            if not self._rows:
                return  # no page, or none with a record young enough: nothing to ask SQLite
            for start in range(0, len(fps), _QUERY):
                window = list(fps[start:start + _QUERY])
                marks = ",".join("?" * len(window))
                found += self._db.execute(f"SELECT fp, entry FROM rec WHERE fp IN ({marks})", window).fetchall()
        for fp, entry in found:
            yield fp, fast_json.loads(entry)

    def _load_new(self, oldest: float) -> None:
        if not self.folder.exists():
            return
        for path in self.folder.iterdir():
            name = path.name
            if name in self._loaded or not name.endswith(".jsonl") or name.startswith("."):
                continue
            if _sent_at(name) + 1 <= oldest:
                continue  # every record of the page is older than asked for
            self._load(path)
            self._loaded.add(name)

    def _load(self, path: StoragePath) -> None:
        """Index a page, read a line at a time and inserted ``_INSERT`` records at a time (a whole page
        of 50,000 records read, split and decoded at once took ~38 MiB for two pages)."""
        rows: list[tuple[str, str, float]] = []
        try:
            with path.open("rb") as fh:
                for line in fh:
                    row = _row(line)
                    if row is not None:
                        rows.append(row)
                    if len(rows) >= _INSERT:
                        self._insert(rows)
                        rows = []
        except FileNotFoundError:
            return
        self._insert(rows)

    def _insert(self, rows: list[tuple[str, str, float]]) -> None:
        if not rows:
            return
        self._db.executemany("INSERT INTO rec VALUES (?, ?, ?) ON CONFLICT(fp) DO UPDATE SET "
                             "entry = excluded.entry, sent_at = excluded.sent_at "
                             "WHERE excluded.sent_at > rec.sent_at", rows)
        self._rows += len(rows)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


def _row(line: bytes) -> tuple[str, str, float] | None:
    """(fingerprint, record text, sent_at) of a page line; None for a bad line (its request is only
    sent again)."""
    try:
        entry = fast_json.loads(line)
        fp, sent_at = entry["fingerprint"], files.timestamp(entry.get("sent_at"), "sent_at")
        files.check_fingerprint(fp)
    except (ValueError, TypeError, KeyError):
        return None
    return fp, line.rstrip(b"\n").decode("utf-8", "replace"), sent_at


def _sent_at(name: str) -> int:
    head = name.split("-", 1)[0]
    return int(head) if head.isdigit() else 0
