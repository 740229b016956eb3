"""Tiny scripted HTTP/1.1 servers on 127.0.0.1 for the lean client's tests (tests/backends/test_lean_http.py):
each connection is handed to a script that reads requests and writes whatever bytes the case needs
(chunked answers, early closes, silence), while the server counts connections and request bodies."""

from __future__ import annotations

import asyncio
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class Seen:
    """What a server saw: connections opened, most open at once, request bodies (counted), request heads."""

    connections: int = 0
    open_now: int = 0
    peak_open: int = 0
    bodies: Counter[bytes] = field(default_factory=Counter)
    order: list[bytes] = field(default_factory=list)
    heads: list[str] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    got_request: asyncio.Event = field(default_factory=asyncio.Event)


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, Seen], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader, seen: Seen) -> bytes | None:
    """The next request's body (counted in ``seen``), or None when the client closed the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    text = head.decode("latin-1")
    length = next((int(line.split(":", 1)[1]) for line in text.split("\r\n")
                   if line.lower().startswith("content-length:")), 0)
    body = await reader.readexactly(length) if length else b""
    seen.heads.append(text)
    seen.bodies[body] += 1
    seen.order.append(body)
    seen.got_request.set()
    return body


def answer(status: int = 200, body: bytes = b'{"ok":true}', *headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"content-length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
    """Keep-alive: answer each request with its own body, until the client closes."""
    while (body := await read_request(reader, seen)) is not None:
        writer.write(answer(200, body or b"{}"))
        await writer.drain()


@asynccontextmanager
async def serving(script: Script, tls: ssl.SSLContext | None = None) -> AsyncIterator[tuple[str, Seen]]:
    """Run ``script`` on every connection to a fresh loopback port; yield (base URL, Seen); stop it."""
    seen = Seen()
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.connections += 1
        seen.open_now += 1
        seen.peak_open = max(seen.peak_open, seen.open_now)
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await script(reader, writer, seen)
        finally:
            seen.open_now -= 1
            writer.close()
            seen.closed.set()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}", seen
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()
