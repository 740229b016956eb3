"""Small wire encodings every emulated provider shares: timestamps, JSONL lines, JSON bodies in and out.

JSON bodies go through the package's orjson codec (:mod:`airflow_llm_batch.pipeline.fast_json`): the
emulator answers thousands of real-time requests and polls a second in the benches, and the standard
library's codec was a visible share of its CPU per answer. What a client reads is unchanged: the same
JSON values, the same ``Content-Type: application/json; charset=utf-8`` (only the spacing differs).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from airflow_llm_batch.pipeline import fast_json

JSON_CONTENT_TYPE = "application/json"
_UTF8 = frozenset({"utf-8", "utf8"})


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


def json_answer(value: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """``value`` as a JSON answer: what ``web.json_response`` sends, encoded by orjson (compact)."""
    return web.Response(body=fast_json.dumps(value), status=status, headers=headers,
                        content_type=JSON_CONTENT_TYPE, charset="utf-8")


async def read_json(request: web.Request) -> Any:
    """The request body's JSON value, as ``request.json()`` reads it; ValueError when it is not JSON.

    orjson reads UTF-8 bodies; whatever it refuses (NaN, another charset, bad bytes) is read again by
    the standard library, so the same bodies are accepted and refused as with ``request.json()``."""
    raw = await request.read()
    charset = request.charset
    if charset is None or charset.lower() in _UTF8:
        try:
            return fast_json.loads(raw)
        except ValueError:
            pass
    return json.loads(raw.decode(charset or "utf-8"))


async def json_object_body(request: web.Request, error: Callable[[int, str], Exception],
                           not_json: str) -> Mapping[str, Any]:
    """The request's JSON object body; a 400 in the provider's own error type (``error(status, text)``)
    when it is not JSON (``not_json``) or not an object."""
    try:
        body = await read_json(request)
    except ValueError as exc:
        raise error(400, not_json) from exc
    if not isinstance(body, Mapping):
        raise error(400, "The request body must be a JSON object.")
    return body


__all__ = ["json_answer", "json_object_body", "jsonl_line", "read_json", "rfc3339"]
