"""Small wire encodings every emulated provider shares: timestamps and JSONL lines."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any


def rfc3339(moment: float | None) -> str | None:
    """Unix seconds as an RFC 3339 UTC timestamp (None stays None).

    Example: ``rfc3339(0.0) == "1970-01-01T00:00:00.000000Z"``
    """
    if moment is None:
        return None
    return dt.datetime.fromtimestamp(moment, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def jsonl_line(value: Mapping[str, Any]) -> bytes:
    """One compact JSONL line (UTF-8, newline-terminated)."""
    return (json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


__all__ = ["jsonl_line", "rfc3339"]
