"""File plumbing shared by the request cache's answers and in-flight records: one small JSON
entry per fingerprint, written under a temporary name and renamed into place (a reader never sees
half an entry), read and written from a thread pool (on object storage each is a request)."""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from airflow_llm_batch.pipeline.storage import StoragePath, write_bytes_atomically

log = logging.getLogger(__name__)

_FINGERPRINT = re.compile(r"[0-9a-f]{16,128}")
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


def entry_path(root: StoragePath, fingerprint: str) -> StoragePath:
    """``root / fp[:2] / f"{fp}.json"``; raises ValueError for anything but a lowercase hex digest."""
    check_fingerprint(fingerprint)
    path: StoragePath = root / fingerprint[:2] / f"{fingerprint}.json"
    return path


def write_entry(path: StoragePath, entry: dict[str, Any]) -> bool:
    """Write ``entry`` as compact JSON at ``path`` atomically; False (never raised) on a storage error."""
    return write_bytes(path, json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


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


def check_fingerprint(fp: str) -> None:
    if not isinstance(fp, str) or not _FINGERPRINT.fullmatch(fp):
        raise ValueError(f"not a request fingerprint (lowercase hex): {fp!r}")
