"""One keep-alive HTTP/1.1 connection of the lean client (backends/lean_http.py): an asyncio Protocol that
carries one exchange at a time and parses the answer as its bytes arrive.

What it reads: the status line, the headers (names lower-cased; a repeated header joined with ``, ``),
interim 1xx answers (skipped), and a body delimited by ``Content-Length``, by ``Transfer-Encoding:
chunked`` or, failing both, by the server closing the connection. What it keeps: whether the connection
may carry the next exchange (HTTP/1.1 without ``Connection: close``, the body delimited, no stray bytes).

A failure is one of two errors: :class:`ConnectionFailed` (no whole answer: refused, reset, closed
mid-answer, a malformed answer) or ``TimeoutError`` (raised by the client at its deadline). Neither says
whether the server acted on the request: the caller's policy decides (the client never resends).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import NamedTuple

#: the most bytes a status line and headers may take before the answer counts as malformed
MAX_HEAD_BYTES = 64 * 1024
CHUNKED, UNTIL_CLOSE = -1, -2  # body lengths that are not a byte count


class ConnectionFailed(ConnectionError):
    """No whole answer came back: the connection was refused, lost or closed mid-answer, or the answer
    was not HTTP/1.1 (the message names the cause, never a header value)."""


class Answer(NamedTuple):
    """An HTTP answer: ``status``, ``headers`` (lower-cased names) and the whole ``body``."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class Head(NamedTuple):
    status: int
    headers: dict[str, str]
    length: int  # bytes, CHUNKED or UNTIL_CLOSE
    keep_alive: bool


def parse_head(raw: bytes) -> Head:
    """The status line and headers of an answer (``raw`` ends before the blank line)."""
    lines = raw.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise ValueError("not an HTTP/1.x status line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError("a header line without a colon")
        name, value = name.strip().lower(), value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    status = int(code)
    tokens = {t.strip() for t in headers.get("connection", "").lower().split(",")}
    keep_alive = "keep-alive" in tokens if version == "HTTP/1.0" else "close" not in tokens
    length = body_length(status, headers)
    return Head(status, headers, length, keep_alive and length != UNTIL_CLOSE)


def body_length(status: int, headers: Mapping[str, str]) -> int:
    """How the body ends (RFC 9112 section 6.3, for answers to GET and POST)."""
    if status in (204, 304):
        return 0
    coding = headers.get("transfer-encoding")
    if coding is not None:
        return CHUNKED if coding.lower().rsplit(",", 1)[-1].strip() == "chunked" else UNTIL_CLOSE
    length = headers.get("content-length")
    if length is None:
        return UNTIL_CLOSE
    if not length.isdigit():
        raise ValueError("a Content-Length that is not a number")
    return int(length)


class Connection(asyncio.Protocol):
    """One socket to one server. ``exchange`` writes a request and waits for its whole answer; the
    owner (the pool) decides about reuse from :meth:`reusable` after it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[Answer] | None = None
        self.closed = False
        self.keep_alive = False
        self.idle_since = 0.0
        self._head: Head | None = None
        self._pos = 0  # where the unread body bytes start in ``buffer``
        self._chunks: list[bytes] = []

    # -- asyncio.Protocol ---------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport (TCP or TLS)

    def data_received(self, data: bytes) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():  # bytes nobody asked for: the connection is unusable
            self.abort()
            return
        self.buffer += data
        try:
            answer = self._parse()
        except ValueError as exc:
            waiter.set_exception(ConnectionFailed(f"malformed HTTP answer ({exc})"))
            self.abort()
            return
        if answer is not None:
            waiter.set_result(answer)

    def eof_received(self) -> bool:
        head, waiter = self._head, self.waiter
        if head is not None and head.length == UNTIL_CLOSE and waiter is not None and not waiter.done():
            waiter.set_result(Answer(head.status, head.headers, bytes(self.buffer[self._pos:])))
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            cause = f"{type(exc).__name__}: {exc}" if exc else "closed by the server"
            waiter.set_exception(ConnectionFailed(f"connection lost before the whole answer ({cause})"))

    # -- use ----------------------------------------------------------------------------------------------
    def reusable(self, now: float, idle_seconds: float) -> bool:
        """Open, not closing, and idle for less than ``idle_seconds`` (servers close idle keep-alives)."""
        transport = self.transport
        return (not self.closed and transport is not None and not transport.is_closing()
                and now - self.idle_since < idle_seconds)

    def start(self, payload: bytes, waiter: asyncio.Future[Answer]) -> None:
        """Write one request (a single buffer) and resolve ``waiter`` with its answer."""
        assert self.transport is not None
        self.waiter, self.keep_alive = waiter, False
        self.transport.write(payload)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # -- parsing ------------------------------------------------------------------------------------------
    def _parse(self) -> Answer | None:
        head = self._head
        while head is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD_BYTES:
                    raise ValueError(f"status line and headers over {MAX_HEAD_BYTES} bytes")
                return None
            parsed = parse_head(bytes(self.buffer[:end]))
            if 100 <= parsed.status < 200:  # an interim answer: the real one follows
                del self.buffer[:end + 4]
                continue
            head, self._head, self._pos = parsed, parsed, end + 4
        if head.length == UNTIL_CLOSE:
            return None
        body = self._chunked() if head.length == CHUNKED else self._sized(head.length)
        if body is None:
            return None
        self.keep_alive = head.keep_alive and not self.buffer  # stray bytes after the answer: do not reuse
        self._head = None
        return Answer(head.status, head.headers, body)

    def _sized(self, length: int) -> bytes | None:
        end = self._pos + length
        if len(self.buffer) < end:
            return None
        body = bytes(self.buffer[self._pos:end])
        del self.buffer[:end]
        return body

    def _chunked(self) -> bytes | None:
        """The body once its last chunk (and trailers) arrived; chunks read so far are kept across calls."""
        buffer = self.buffer
        while True:
            line_end = buffer.find(b"\r\n", self._pos)
            if line_end < 0:
                return None
            size = int(bytes(buffer[self._pos:line_end]).split(b";", 1)[0].strip(), 16)
            start = line_end + 2
            if size == 0:
                return self._trailers(start)
            if len(buffer) < start + size + 2:
                return None
            self._chunks.append(bytes(buffer[start:start + size]))
            self._pos = start + size + 2

    def _trailers(self, start: int) -> bytes | None:
        """After the last chunk: no trailer (an empty line) or trailer lines up to an empty line."""
        if self.buffer[start:start + 2] == b"\r\n":
            end = start + 2
        else:
            found = self.buffer.find(b"\r\n\r\n", start)
            if found < 0:
                return None
            end = found + 4
        body, self._chunks = b"".join(self._chunks), []
        del self.buffer[:end]
        return body
