"""Small wire encodings every emulated provider shares: timestamps and JSONL lines."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web


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


async def json_object_body(request: web.Request, error: Callable[[int, str], Exception],
                           not_json: str) -> Mapping[str, Any]:
    """The request's JSON object body; a 400 in the provider's own error type (``error(status, text)``)
    when it is not JSON (``not_json``) or not an object."""
    try:
        body = await request.json(loads=json.loads)
    except ValueError as exc:
        raise error(400, not_json) from exc
    if not isinstance(body, Mapping):
        raise error(400, "The request body must be a JSON object.")
    return body


__all__ = ["json_object_body", "jsonl_line", "rfc3339"]
