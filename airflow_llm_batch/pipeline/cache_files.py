"""File plumbing shared by the request cache's answers and in-flight records: one small JSON
entry per fingerprint, never seen half-written by a reader. On the local disk an entry is written
with plain ``os`` calls to a temporary sibling and renamed into place; on an async object store
(gcsfs, s3fs, adlfs) a window of entries is uploaded concurrently in one ``fs.pipe`` call (an object
is published whole when its upload completes); elsewhere each entry goes through
:class:`~airflow_llm_batch.pipeline.storage.AtomicWriter` from a thread pool."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import orjson

from airflow_llm_batch.pipeline.storage import StoragePath, is_object_store, write_bytes_atomically

log = logging.getLogger(__name__)

_FINGERPRINT = re.compile(r"[0-9a-f]{16,128}")
#: the digits of a fingerprint, deleted from a page joined by commas in one C call (a sixth of a regex's time)
_HEX = b"0123456789abcdef"
#: a new file only: a temporary name that already exists is never written through
_CREATE = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)
_T = TypeVar("_T")
_R = TypeVar("_R")


def entry_header(entry: Any, *, version: int, fingerprint: str, kind: str) -> dict[str, Any]:
    """``entry`` as a dict once it is a ``kind`` of this ``version`` stored for ``fingerprint``;
    raises ValueError otherwise (the caller treats the entry as absent)."""
    if not isinstance(entry, dict) or entry.get("v") != version:
        raise ValueError(f"not {kind} of this version")
    if entry.get("fingerprint") != fingerprint:
        raise ValueError(f"{kind} stored under another fingerprint")
    return entry


def timestamp(value: Any, name: str) -> float:
    """A stored time in seconds: a finite number (not a bool); raises ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"bad {name}")
    return float(value)


class EntryFiles:
    """The entries under ``root``: their paths, with the 256 prefix folders joined once (a storage-path
    join costs tens of microseconds, more than reading a small local file), and their bytes, read with
    a plain ``open`` when ``root`` is on the local disk (a lookup is mostly a miss: a prepare of 100k rows
    asks for 200k entries that do not exist).

    Example::

        >>> import pathlib, tempfile
        >>> files = EntryFiles(pathlib.Path(tempfile.mkdtemp()))
        >>> files.read("ab" * 32) is None, files.path("ab" * 32).name
        (True, 'abababababababababababababababababababababababababababababababab.json')
    """

    def __init__(self, root: StoragePath) -> None:
        self.root = root
        self._folders: dict[str, StoragePath] = {}
        self._local = local_folder(root)
        self._made: set[str] = set()  # local prefix folders known to exist (made once per object)
        self._temp = f".{uuid.uuid4().hex[:12]}"  # this object's temporary names: {fp}.json{_temp}{n}.tmp
        self._written = itertools.count()
        self._store: Any = root.fs if self._local is None and is_object_store(root) else None  # type: ignore[attr-defined]

    @property
    def local(self) -> bool:
        """Whether the entries are on this machine's disk (then reading them in threads gains nothing)."""
        return self._local is not None

    def path(self, fingerprint: str) -> StoragePath:
        """``root / fp[:2] / f"{fp}.json"``; raises ValueError for anything but a lowercase hex digest."""
        check_fingerprint(fingerprint)
        prefix, name = entry_name(fingerprint)
        folder = self._folders.get(prefix)
        if folder is None:
            folder = self._folders[prefix] = self.root / prefix
        path: StoragePath = folder / name
        return path

    def write_many(self, entries: Sequence[tuple[str, bytes]], threads: int) -> int:
        """Write each (checked fingerprint, bytes) entry so that no reader sees half of it and the last
        writer wins; returns how many were written. A failed write is counted out, never raised."""
        if self._local is not None:
            return sum(self._write_local(fp, data) for fp, data in entries)
        if self._store is not None and len(entries) > 1:
            try:  # one call: the store's event loop runs ``threads`` uploads at a time
                self._store.pipe({self._store_path(fp): data for fp, data in entries}, batch_size=threads)
                return len(entries)
            except Exception:  # which one failed is unknown: each is written again (the same bytes) below
                log.debug("Request cache: a batch upload failed; writing its entries one by one")
        return sum(map_in_threads(lambda entry: write_bytes(self.path(entry[0]), entry[1]), entries, threads))

    def _store_path(self, fingerprint: str) -> str:
        return "/".join((self.root.path, *entry_name(fingerprint)))  # type: ignore[attr-defined]

    def _write_local(self, fingerprint: str, data: bytes) -> bool:
        prefix, name = entry_name(fingerprint)
        folder = f"{self._local}/{prefix}"
        temp = f"{folder}/.{name}{self._temp}{next(self._written)}.tmp"
        try:
            fd = self._create(prefix, folder, temp)
        except OSError:
            return False
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.replace(temp, f"{folder}/{name}")
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            return False
        return True

    def _create(self, prefix: str, folder: str, temp: str) -> int:
        """A new temporary file in ``folder``, made once per object (again if it was removed since)."""
        if prefix in self._made:
            try:
                return os.open(temp, _CREATE, 0o666)
            except FileNotFoundError:
                self._made.discard(prefix)
        os.makedirs(folder, exist_ok=True)
        self._made.add(prefix)
        return os.open(temp, _CREATE, 0o666)

    def read(self, fingerprint: str) -> bytes | None:
        """The entry's bytes, or None when there is none (other errors are raised)."""
        check_fingerprint(fingerprint)
        return self._read(fingerprint, None)

    def read_many(self, fps: Sequence[str], threads: int) -> Iterator[bytes | Exception | None]:
        """Each entry's bytes (or None, or the error raised reading it) for ``fps``, checked
        fingerprints (:func:`check_fingerprints`), in order, on up to ``threads`` threads when the
        entries are not local. Locally the prefix folders are listed once per call, and only the
        entries of existing folders that exist are opened: a miss costs no exception."""
        if self._local is None:
            return map_in_threads(lambda fp: self._try_read(fp, None), fps, threads)
        folders = self._local_folders()
        return (None if folders is not None and fp[:2] not in folders else self._try_read(fp, folders) for fp in fps)

    def read_found(self, fps: Sequence[str], threads: int) -> Iterator[tuple[str, bytes | Exception]]:
        """(fingerprint, bytes or the error raised reading it) of the entries of ``fps`` that exist, as
        :meth:`read_many` finds them; nothing at all, without a step per fingerprint, when the local
        root has no prefix folder (an empty cache: every lookup of a first run)."""
        found: Iterator[tuple[str, bytes | Exception | None]]
        if self._local is None:
            found = zip(fps, map_in_threads(lambda fp: self._try_read(fp, None), fps, threads), strict=True)
        else:
            folders = self._local_folders()
            if folders is not None and not folders:
                return iter(())
            found = ((fp, self._try_read(fp, folders)) for fp in fps if folders is None or fp[:2] in folders)
        return ((fp, data) for fp, data in found if data is not None)

    def _try_read(self, fingerprint: str, folders: frozenset[str] | None) -> bytes | Exception | None:
        try:
            return self._read(fingerprint, folders)
        except Exception as exc:  # the caller decides what an unreadable entry means
            return exc

    def _read(self, fingerprint: str, folders: frozenset[str] | None) -> bytes | None:
        if self._local is None:
            return read_entry(self.path(fingerprint))
        if folders is not None and fingerprint[:2] not in folders:
            return None
        name = "/".join((self._local, *entry_name(fingerprint)))
        if folders is not None and not os.access(name, os.F_OK):
            return None
        try:
            with open(name, "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            return None

    def _local_folders(self) -> frozenset[str] | None:
        """The prefix folders under the local root (None when it cannot be listed: every entry is tried)."""
        try:
            with os.scandir(self._local) as found:
                return frozenset(item.name for item in found if len(item.name) == 2)
        except FileNotFoundError:
            return frozenset()
        except OSError:
            return None


def entry_name(fingerprint: str) -> tuple[str, str]:
    """(prefix folder, file name) of a fingerprint's entry under the root: the one layout of the entries."""
    return fingerprint[:2], f"{fingerprint}.json"


def local_folder(root: StoragePath) -> str | None:
    """``root`` as a folder of this machine's disk (a plain path or ``file://``), else None."""
    if isinstance(root, os.PathLike) and not hasattr(root, "protocol"):
        return str(os.fspath(root))
    if str(getattr(root, "protocol", "")) in ("file", "local") and isinstance(getattr(root, "path", None), str):
        return str(root.path)  # type: ignore[attr-defined]
    return None


def entry_bytes(entry: dict[str, Any]) -> bytes:
    """``entry`` as compact UTF-8 JSON: the values of ``json.dumps(entry, ensure_ascii=False,
    separators=(",", ":"))``, through orjson (a tenth of the time). The two spell a float with an
    exponent differently (``1e-07`` / ``1e-7``: the same number) and nothing else, as long as every float
    is finite (orjson writes NaN and infinities as null): an entry whose top-level floats or number lists
    are not all finite, or that orjson refuses (an int beyond 64 bits), is written by ``json``. Raises
    UnicodeEncodeError for text that is not UTF-8 (a lone surrogate)."""
    for value in entry.values():
        kind = type(value)
        if (kind is float and not math.isfinite(value)) or (kind is list and not _finite_numbers(value)):
            break
    else:
        try:
            return orjson.dumps(entry)
        except TypeError:
            pass
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _finite_numbers(values: list[Any]) -> bool:
    """Whether ``values`` are numbers with a finite sum (so each is finite), in one C call."""
    try:
        return math.isfinite(sum(values))
    except (TypeError, OverflowError):  # not numbers only, or an int beyond a float
        return False


def write_bytes(path: StoragePath, data: bytes) -> bool:
    """Write ``data`` at ``path`` atomically (:func:`~airflow_llm_batch.pipeline.storage.write_bytes_atomically`:
    a renamed sibling locally, one upload on object storage); False (never raised) on a storage error.
    Two writers of one entry store the same answer, so whichever lands last is right."""
    try:
        write_bytes_atomically(path, data)
    except Exception:
        return False
    return True


def read_entry(path: StoragePath) -> bytes | None:
    """The bytes at ``path``, or None when there is no entry. Other errors are raised."""
    try:
        with path.open("rb") as fh:
            data: bytes = fh.read()
    except FileNotFoundError:
        return None
    return data


def map_in_threads(fn: Callable[[_T], _R], items: Sequence[_T], threads: int) -> Iterator[_R]:
    """``map(fn, items)`` on up to ``threads`` threads, results in order."""
    workers = min(threads, len(items))
    if workers <= 1:
        return (fn(item) for item in items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm-batch-cache") as pool:
        return iter(list(pool.map(fn, items)))


def windows(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    iterator = iter(items)
    while window := list(itertools.islice(iterator, size)):
        yield window


def check_fingerprints(fps: Sequence[str]) -> None:
    """:func:`check_fingerprint` of each of ``fps``, in a few C calls over the page when all are good
    (lowercase hex only, 16 to 128 characters each), else one by one to name the bad one."""
    try:
        lengths = set(map(len, fps))
        if not fps or (16 <= min(lengths) and max(lengths) <= 128 and ",".join(fps).encode("ascii").translate(
                None, _HEX) == b"," * (len(fps) - 1)):  # nothing but hex digits between the commas
            return
    except (TypeError, UnicodeEncodeError):  # not all strings, or not ASCII: named below
        pass
    for fp in fps:
        check_fingerprint(fp)


def check_fingerprint(fp: str) -> None:
    if not isinstance(fp, str) or not _FINGERPRINT.fullmatch(fp):
        raise ValueError(f"not a request fingerprint (lowercase hex): {fp!r}")
