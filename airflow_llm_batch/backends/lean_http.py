"""A lean HTTP/1.1 client for the two hot raw paths (the triggerer's poll, the worker's real-time send):
keep-alive connections pooled per (scheme, host, port), each request written as ONE pre-built buffer.

Why not aiohttp: at a thousand requests a second, most of the CPU left after dropping the SDKs went to
aiohttp's per-request machinery (``ClientSession._request``: URL objects, header multidicts, tracing
hooks, cookie and redirect handling). This client does only what those two paths need:

- the connection's fixed headers (``Host``, the key, versions...) are encoded once per pool; a request adds
  its request line, its own few headers and ``Content-Length`` to them;
- at most ``limit`` connections per pool; callers beyond it wait FIFO for the next free one;
- idle connections older than ``IDLE_SECONDS`` (or that the server closed) are dropped before reuse;
- ``target.timeout`` bounds a whole call (waiting for a connection included) -> ``TimeoutError``;
- no cookies, no redirects (a 3xx is an answer like any other), no compression (``Accept-Encoding:
  identity``), no proxies (raw_http.py keeps aiohttp when the environment names one), https through
  ``ssl.create_default_context()`` with the host name checked.

Nothing is ever sent twice by this client: a connection that fails once the request was handed to the
socket raises :class:`~airflow_llm_batch.backends.lean_http_wire.ConnectionFailed`, whatever happened, and
the caller's policy decides (the real-time runner counts it as "may be paid"). A pooled connection found
closed or closing BEFORE the request is written is simply skipped for another one (no byte left).

Example::

    client = LeanClient({"Authorization": "Bearer k"}, limit=8, timeout=30.0)
    answer = await client.request("POST", "https://api.example/v1/chat/completions", b"{...}")
    await client.aclose()
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Mapping
from urllib.parse import quote

from airflow_llm_batch.backends.lean_http_wire import Answer, Connection, ConnectionFailed

#: seconds an idle keep-alive connection stays worth reusing (servers close theirs after 5 to 75 s)
IDLE_SECONDS = 4.0
DEFAULT_PORTS = {"http": 80, "https": 443}
USER_AGENT = "airflow-llm-batch"
#: headers the client writes itself (a connection's own value would frame the request wrongly)
OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "accept-encoding"})
#: characters left as they are when a path must be percent-encoded (existing escapes included)
PATH_SAFE = "/?&=%:@!$'()*+,;~"

__all__ = ["Answer", "ConnectionFailed", "LeanClient", "supports"]


def supports(url: str) -> bool:
    """Whether the lean client can carry requests to ``url``'s server (http/https, no credentials in it)."""
    scheme, sep, rest = url.partition("://")
    return bool(sep) and scheme.lower() in DEFAULT_PORTS and "@" not in rest.split("/", 1)[0]


def header_lines(headers: Mapping[str, str]) -> bytes:
    """``name: value\\r\\n`` lines; a name or value with a line break is refused (without showing it)."""
    out = []
    for name, value in headers.items():
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value or ":" in name:
            shown = (name.splitlines() or [""])[0][:40]  # the name only: a value may be a key
            raise ValueError(f"header {shown!r} has a line break or a bad name")
        out.append(f"{name}: {value}\r\n")
    return "".join(out).encode()


def fixed_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The connection's headers, names compared case-insensitively: a User-Agent unless it sets one,
    ``Accept-Encoding: identity`` always (bodies are read as sent), and none of the framing headers the
    client writes itself."""
    out = {"user-agent": USER_AGENT}
    for name, value in headers.items():
        if name.lower() not in OWN_HEADERS:
            out.pop(name.lower(), None)
            out[name] = value
    return {**out, "accept-encoding": "identity"}


_TLS: dict[str, ssl.SSLContext] = {}


async def default_tls() -> ssl.SSLContext:
    """The system's trust store, loaded once per process (in a thread: it reads the CA bundle)."""
    context = _TLS.get("default")
    if context is None:
        context = _TLS["default"] = await asyncio.to_thread(ssl.create_default_context)
    return context


class Pool:
    """Connections to one (scheme, host, port): the idle ones (most recent last), how many are open,
    and the callers waiting FIFO for one (each gets a connection, or None: "open your own")."""

    def __init__(self, host: str, port: int, tls: bool, head: bytes, limit: int) -> None:
        self.host, self.port, self.tls, self.head, self.limit = host, port, tls, head, limit
        self.idle: list[Connection] = []
        self.open = 0
        self.waiters: deque[asyncio.Future[Connection | None]] = deque()

    async def acquire(self, deadline: float, ssl_context: ssl.SSLContext | None) -> Connection:
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self.idle:
            conn = self.idle.pop()
            if conn.reusable(now, IDLE_SECONDS):
                return conn
            conn.abort()
            self.open -= 1
        if self.open < self.limit:
            self.open += 1
        else:
            handed = await self._wait(loop, deadline)
            if handed is not None and handed.reusable(loop.time(), IDLE_SECONDS):
                return handed
            if handed is not None:
                handed.abort()  # its slot is ours: open a fresh connection in it
        try:
            return await self._connect(loop, deadline, ssl_context)
        except BaseException:
            self.free_slot()
            raise

    async def _wait(self, loop: asyncio.AbstractEventLoop, deadline: float) -> Connection | None:
        waiter: asyncio.Future[Connection | None] = loop.create_future()
        self.waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():  # handed something as we left: pass it on
                handed = waiter.result()
                if handed is not None:
                    self.release(handed, True)
                else:
                    self.free_slot()
            waiter.cancel()
            raise

    async def _connect(self, loop: asyncio.AbstractEventLoop, deadline: float,
                       ssl_context: ssl.SSLContext | None) -> Connection:
        context = (ssl_context or await default_tls()) if self.tls else None
        try:
            async with asyncio.timeout_at(deadline):
                _, conn = await loop.create_connection(Connection, self.host, self.port, ssl=context,
                                                       server_hostname=self.host if context else None)
        except TimeoutError:
            raise
        except OSError as exc:
            raise ConnectionFailed(f"could not connect to {self.host}:{self.port} "
                                   f"({type(exc).__name__}: {exc})") from exc
        return conn

    def release(self, conn: Connection, reusable: bool) -> None:
        """After an exchange: hand the connection to the first waiter, keep it idle, or close it."""
        if not (reusable and conn.keep_alive and not conn.closed):
            conn.abort()
            self.free_slot()
            return
        conn.idle_since = asyncio.get_running_loop().time()
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self.idle.append(conn)

    def free_slot(self) -> None:
        """A connection closed: its slot goes to the first waiter (who opens one), else it is free."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.open -= 1

    def close(self) -> None:
        for conn in self.idle:
            conn.abort()
        self.open -= len(self.idle)
        self.idle.clear()


class LeanClient:
    """HTTP/1.1 requests with fixed ``headers`` (secret), at most ``limit`` connections per server, each
    call bounded by ``timeout`` seconds. ``ssl_context``: a custom trust (tests, private CAs)."""

    def __init__(self, headers: Mapping[str, str], limit: int, timeout: float,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.limit, self.timeout, self.ssl_context = limit, timeout, ssl_context
        self._fixed = header_lines(fixed_headers(headers))
        self._pools: dict[str, Pool] = {}
        self.closed = False

    async def request(self, method: str, url: str, body: bytes | None = None,
                      headers: Mapping[str, str] | None = None) -> Answer:
        """Send one request and return its whole answer (any status); raise ConnectionFailed / TimeoutError."""
        if self.closed:
            raise ConnectionFailed("the client is closed")
        scheme, _, rest = url.partition("://")
        slash = rest.find("/")
        authority, path = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
        if not path.isascii() or not path.isprintable() or " " in path:
            path = quote(path, safe=PATH_SAFE)  # never a raw space or line break in the request line
        pool = self._pools.get(scheme + authority) or self._pool(scheme, authority)
        extra = header_lines(headers) if headers else b""
        length = b"content-length: %d\r\n" % len(body) if body is not None else b""
        payload = b"".join((f"{method} {path} HTTP/1.1\r\n".encode(), pool.head, extra, length, b"\r\n",
                            body or b""))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        conn = await pool.acquire(deadline, self.ssl_context)
        return await self._exchange(loop, pool, conn, payload, deadline)

    async def _exchange(self, loop: asyncio.AbstractEventLoop, pool: Pool, conn: Connection, payload: bytes,
                        deadline: float) -> Answer:
        waiter: asyncio.Future[Answer] = loop.create_future()
        timer = loop.call_at(deadline, _expire, waiter)
        done = False
        try:
            conn.start(payload, waiter)
            answer = await waiter
            done = True
            return answer
        finally:
            timer.cancel()
            conn.waiter = None
            pool.release(conn, done and not self.closed)

    def _pool(self, scheme: str, authority: str) -> Pool:
        scheme = scheme.lower()
        if scheme not in DEFAULT_PORTS or not authority or "@" in authority:
            raise ValueError(f"the lean HTTP client carries http(s) URLs without credentials, not {scheme!r}")
        host, port = split_authority(authority, DEFAULT_PORTS[scheme])
        head = f"host: {authority}\r\n".encode() + self._fixed
        pool = self._pools[scheme + authority] = Pool(host, port, scheme == "https", head, self.limit)
        return pool

    async def aclose(self) -> None:
        """Close the idle connections; those in use close when their exchange ends."""
        self.closed = True
        for pool in self._pools.values():
            pool.close()


def split_authority(authority: str, default_port: int) -> tuple[str, int]:
    """``host[:port]`` (``[v6]:port`` too) -> (host, port)."""
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    host, sep, port = authority.rpartition(":")
    return (host, int(port)) if sep else (authority, default_port)


def _expire(waiter: asyncio.Future[Answer]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no whole answer within the call's timeout"))
