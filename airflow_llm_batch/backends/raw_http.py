"""Plain HTTP on a connection the SDK client describes: the one place that reads "base URL, query and
headers" out of the client the hook built, and opens the HTTP client that carries them.

Two users, one mechanism: the triggerer's raw poll (triggers/raw_poll.py: one GET per poll) and the
worker's raw real-time send (backends/raw_realtime_send.py: one POST per row). An SDK call spends most of its CPU
building the request and adapting httpx to its transport; at a thousand requests a second that is the
worker's whole budget. :func:`stainless_target` and :func:`gemini_target` compute the URL base, query
and headers ONCE per connection (base URL, Bearer / Azure ``api-key`` + ``api-version`` / Anthropic's
auth and version headers / Gemini's ``x-goog-api-key``, custom headers); they return None where tokens
change while the client lives (custom auth, an Azure AD token provider, Vertex): the SDK keeps those
fresh, so its path stays. Headers are never logged.

:func:`open_client` picks that HTTP client: the lean HTTP/1.1 client (backends/lean_http.py: a fraction of
aiohttp's CPU per request), or an aiohttp session where only aiohttp can do the job (a proxy the
environment names, another scheme). Both answer and fail alike (:class:`HttpClient`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode

from airflow_llm_batch.backends.lean_http import Answer, ConnectionFailed, LeanClient, supports

if TYPE_CHECKING:
    import aiohttp

try:  # a faster encoder where the environment has one; the bytes on the wire mean the same
    import orjson

    def encode(body: Any) -> bytes:
        return orjson.dumps(body)

    def decode(payload: bytes) -> Any:
        return orjson.loads(payload)
except ImportError:  # pragma: no cover - orjson is installed with the package's locked dependencies

    def encode(body: Any) -> bytes:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    def decode(payload: bytes) -> Any:
        return json.loads(payload)

#: requests in flight (and sockets) per session unless told otherwise; the rest wait in the connector
MAX_CONNECTIONS = 64
#: seconds one call may take when the connection sets no timeout
DEFAULT_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class RawTarget:
    """A connection as plain HTTP: ``base`` (no trailing slash), ``headers`` (secret), ``query``."""

    base: str
    headers: Mapping[str, str] = field(repr=False)
    query: Mapping[str, str] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    #: the SDK client's own retry count (the poll follows it; the real-time runner owns its retries)
    max_retries: int = 0
    #: Azure OpenAI: None for other providers; with a fixed deployment, the base of the paths it does not
    #: serve (``{endpoint}/openai``), else "" (the model in the body names the deployment)
    azure_base: str | None = None

    def query_string(self) -> str:
        return f"?{urlencode(dict(self.query))}" if self.query else ""


class HttpClient(Protocol):
    """What the raw paths need of an HTTP client: one request -> its whole answer (any status), or
    ``ConnectionFailed`` (no answer) / ``TimeoutError``; ``closed`` after :meth:`aclose`."""

    @property
    def closed(self) -> bool: ...

    async def request(self, method: str, url: str, body: bytes | None = None,
                      headers: Mapping[str, str] | None = None) -> Answer: ...

    async def aclose(self) -> None: ...


def open_client(target: RawTarget, limit: int = MAX_CONNECTIONS) -> HttpClient:
    """The client of the raw paths for ``target`` (build it inside the running loop): the lean HTTP/1.1
    client (backends/lean_http.py), or an aiohttp session where only aiohttp can do the job (a proxy the
    environment names, a scheme other than http(s))."""
    if uses_proxy() or not supports(target.base):
        return AiohttpClient(open_session(target, limit))
    return LeanClient(target.headers, limit, target.timeout)


def open_session(target: RawTarget, limit: int = MAX_CONNECTIONS) -> aiohttp.ClientSession:
    """A session carrying the target's headers, at most ``limit`` sockets (build it inside the running loop)."""
    import aiohttp  # here, not at import: the core install (OpenAI on the worker) runs without aiohttp

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit), headers=dict(target.headers),
        cookie_jar=aiohttp.DummyCookieJar(),  # API keys, no cookies: skip the jar on every answer
        timeout=aiohttp.ClientTimeout(total=target.timeout), trust_env=uses_proxy())


class AiohttpClient:
    """An aiohttp session behind :class:`HttpClient`: its errors become ``ConnectionFailed`` (a timeout
    stays ``TimeoutError``), its answers :class:`Answer` s (no redirects followed)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    @property
    def closed(self) -> bool:
        return bool(self.session.closed)

    async def request(self, method: str, url: str, body: bytes | None = None,
                      headers: Mapping[str, str] | None = None) -> Answer:
        import aiohttp

        try:
            async with self.session.request(method, url, data=body, headers=headers,
                                            allow_redirects=False) as response:
                return Answer(response.status, response.headers, await response.read())
        except TimeoutError:
            raise
        except aiohttp.ClientError as exc:
            raise ConnectionFailed(f"{type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        await self.session.close()


def uses_proxy(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment names an HTTP(S) proxy, which the SDKs' httpx client would honour: then the
    raw session honours it too (``trust_env``: ``HTTP(S)_PROXY``, ``NO_PROXY``, ``.netrc``); without one it
    skips the per-request proxy lookup."""
    env = os.environ if environ is None else environ
    return any(env.get(name) for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
                                          "ALL_PROXY", "all_proxy"))


def stainless_target(client: Any) -> RawTarget | None:
    """OpenAI, Azure OpenAI, OpenAI-compatible and Anthropic clients: the client's own base URL, query and
    headers, or None where the SDK must keep sending (tokens that change, no key)."""
    if client is None or client.custom_auth is not None or getattr(client, "_azure_ad_token_provider", None):
        return None
    auth = client.auth_headers
    if not auth:
        return None
    custom = getattr(client, "_custom_headers", None) or {}  # the connection's own headers: always kept
    headers = {k: v for k, v in {**client.default_headers, **auth}.items()
               if isinstance(v, str) and (k in custom or not _sdk_identity(k))}
    query = {k: str(v) for k, v in client.default_query.items()}
    return RawTarget(str(client.base_url).rstrip("/"), headers, query, seconds(client.timeout),
                     max_retries=client.max_retries, azure_base=_azure_base(client))


def _sdk_identity(name: str) -> bool:
    """The SDK's own identity headers (``User-Agent``, ``X-Stainless-*``: its runtime, version, retry
    count), which would tell the provider the SDK sent what the lean client sends (it sends its own)."""
    lowered = name.lower()
    return lowered == "user-agent" or lowered.startswith("x-stainless")


def _azure_base(client: Any) -> str | None:
    if not hasattr(client, "_azure_deployment"):
        return None
    endpoint = getattr(client, "_azure_endpoint", None)
    return f"{str(endpoint).rstrip('/')}/openai" if client._azure_deployment and endpoint else ""


def gemini_target(kwargs: Mapping[str, Any]) -> RawTarget | None:
    """Gemini Developer API from the hook's client arguments (google-genai keeps its own private)."""
    options = kwargs.get("http_options")
    if options is None or not kwargs.get("api_key") or kwargs.get("vertexai"):
        return None
    base = str(options.base_url or "https://generativelanguage.googleapis.com").rstrip("/")
    headers = {**(options.headers or {}), "x-goog-api-key": str(kwargs["api_key"])}
    timeout = options.timeout / 1000 if options.timeout else DEFAULT_TIMEOUT_SECONDS
    return RawTarget(f"{base}/{options.api_version or 'v1beta'}", headers, timeout=timeout)


def seconds(timeout: Any) -> float:
    """A call's bound from the SDK client's timeout (a number or an httpx Timeout)."""
    value = timeout if isinstance(timeout, int | float) else getattr(timeout, "read", None)
    return float(value) if value else DEFAULT_TIMEOUT_SECONDS
