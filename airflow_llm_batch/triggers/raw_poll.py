"""The triggerer's poll: one plain GET per poll on one HTTP client per connection.

(URL, query and headers of a connection, and the HTTP client carrying them (the lean HTTP/1.1 client,
or aiohttp behind a proxy), come from backends/raw_http.py: the same place the worker's raw real-time
send reads them from.)

An SDK poll spends most of its CPU building the request (headers, URL, options) and parsing the
answer into a pydantic model; a triggerer polling a thousand batches every two seconds cannot afford
either. :class:`RawPoller` computes the URL prefix, query and headers ONCE per connection from the
SDK client the hook built (so a connection means the same here as on the worker: base URL, API key
header, Azure's ``api-version``, Anthropic's version header, Gemini's ``x-goog-api-key``, custom
headers), then sends ``GET <prefix><batch id>`` and hands the JSON to the backend's own status
decoder (``batch_progress`` in backends/openai.py, anthropic_results.py, gemini.py: the same one the
SDK poll uses).

At most ``MAX_CONNECTIONS`` requests are in flight per connection (the client's limit: the rest
wait in its FIFO queue, over the same keep-alive sockets). Vertex (short-lived Google auth tokens) and
keyless clients (Anthropic workload identity, Azure AD tokens) keep the SDK poll: :func:`raw_poller`
returns None for them.

Errors keep their meaning: an answer >= 400 raises a ProviderError carrying ``status_code`` (404:
the batch is gone, pipeline/vanished.py; 401/403: the trigger fails at once, pipeline/waiting.py;
429/5xx: the trigger's tolerance of transient errors), a timeout (``TimeoutError``) or a lost
connection (``ConnectionFailed``) raises as such (transient). Headers are never logged.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from airflow_llm_batch.backends.lean_http import ConnectionFailed
from airflow_llm_batch.backends.raw_http import (
    DEFAULT_TIMEOUT_SECONDS,
    RawTarget,
    gemini_target,
    open_client,
    stainless_target,
)
from airflow_llm_batch.backends.raw_http import (
    MAX_CONNECTIONS as MAX_CONNECTIONS,  # the triggerer's shared SDK clients use the same bound
)
from airflow_llm_batch.exceptions import ProviderError
from airflow_llm_batch.pipeline.types import BatchProgress

#: seconds one poll may take when the connection sets no timeout
POLL_TIMEOUT_SECONDS = DEFAULT_TIMEOUT_SECONDS
#: answers worth trying again (as the SDKs do); a lost connection or a timeout counts as 500
RETRIED_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
RETRY_FIRST_SECONDS, RETRY_MAX_SECONDS = 0.5, 8.0
#: what to do about a refused key, per HTTP status
_AUTH_HINTS = {401: "the provider refused the API key: check the connection's password",
               403: "the API key may not read this batch: check the connection's key and project"}

Decode = Callable[[str, Mapping[str, Any]], BatchProgress]


@dataclass(frozen=True)
class RawSpec:
    """Where and how to GET one batch: ``prefix + batch_id`` with ``query`` and ``headers`` (secret)."""

    prefix: str
    headers: Mapping[str, str] = field(repr=False)
    decode: Decode
    query: Mapping[str, str] = field(default_factory=dict)
    timeout: float = POLL_TIMEOUT_SECONDS
    check_id: Callable[[str], str] = str
    #: tries again after a transient failure, as the SDK client of the connection does (its max_retries)
    max_retries: int = 0


class PollFailed(ProviderError):
    """A poll the provider answered with an HTTP error (``status_code``)."""


class BatchNotFoundError(PollFailed):
    """HTTP 404: the provider does not know the batch (pipeline/vanished.py)."""


class RawPoller:
    """``await poller.progress(batch_id)`` -> BatchProgress, over one HTTP client shared by the triggers of
    a connection. Build it inside the event loop that polls; ``aclose()`` when the last trigger leaves."""

    def __init__(self, spec: RawSpec, max_connections: int = MAX_CONNECTIONS) -> None:
        self.spec = spec
        self.session = open_client(RawTarget(spec.prefix, spec.headers, timeout=spec.timeout), max_connections)
        self._query = f"?{urlencode(dict(spec.query))}" if spec.query else ""  # encoded once

    async def progress(self, batch_id: str) -> BatchProgress:
        url = self.spec.prefix + self.spec.check_id(batch_id) + self._query
        for attempt in range(self.spec.max_retries + 1):
            try:
                return await self._get(batch_id, url)
            except (PollFailed, ConnectionFailed, TimeoutError) as exc:
                if attempt >= self.spec.max_retries or getattr(exc, "status_code", 500) not in RETRIED_STATUSES:
                    raise
            await asyncio.sleep(min(RETRY_MAX_SECONDS, RETRY_FIRST_SECONDS * 2 ** attempt))
        raise AssertionError("unreachable")

    async def _get(self, batch_id: str, url: str) -> BatchProgress:
        status, _, body = await self.session.request("GET", url)
        if status >= 400:
            raise _refused(batch_id, status, body)
        return self.spec.decode(batch_id, json.loads(body))

    async def aclose(self) -> None:
        await self.session.aclose()


def _refused(batch_id: str, status: int, body: bytes) -> PollFailed:
    """The provider's answer to a failed poll, with its own message (never the request's headers)."""
    try:
        document = json.loads(body)
    except ValueError:
        document = {}
    error = document.get("error") if isinstance(document, dict) else None
    detail = error.get("message") if isinstance(error, dict) else error
    hint = _AUTH_HINTS.get(status, "")
    kind = BatchNotFoundError if status == 404 else PollFailed
    return kind(f"polling batch {batch_id} failed (HTTP {status}): {str(detail or '')[:300]}"
                + (f"; {hint}" if hint else ""), status_code=status)


def raw_poller(provider: str, client: Any, client_kwargs: Mapping[str, Any] | None = None) -> RawPoller | None:
    """The raw poller of ``provider``'s connection (``client``: the backend's SDK client;
    ``client_kwargs``: the hook's, for google-genai), or None where the SDK poll stays."""
    spec = raw_spec(provider, client, client_kwargs or {})
    return RawPoller(spec) if spec is not None else None


def raw_spec(provider: str, client: Any, client_kwargs: Mapping[str, Any]) -> RawSpec | None:
    if provider in ("openai", "azure_openai", "anthropic"):
        return _stainless_spec(provider, client)
    if provider == "gemini":
        return _gemini_spec(client_kwargs)
    return None


def _stainless_spec(provider: str, client: Any) -> RawSpec | None:
    """OpenAI, Azure OpenAI and Anthropic: the SDK client's own base URL, query and headers."""
    target = stainless_target(client)
    if target is None:
        return None
    if provider == "anthropic":
        from airflow_llm_batch.backends.anthropic_results import batch_progress as decode_anthropic

        return RawSpec(f"{target.base}/v1/messages/batches/", target.headers, lambda _, doc: decode_anthropic(doc),
                       timeout=target.timeout, max_retries=target.max_retries)
    from airflow_llm_batch.backends.openai import batch_progress as decode_openai

    return RawSpec(f"{target.base}/batches/", target.headers, lambda _, doc: decode_openai(doc), target.query,
                   target.timeout, max_retries=target.max_retries)


def _gemini_spec(kwargs: Mapping[str, Any]) -> RawSpec | None:
    """Gemini Developer API: the hook's client arguments (google-genai keeps its own private)."""
    from airflow_llm_batch.backends.gemini import batch_progress as decode_gemini
    from airflow_llm_batch.backends.gemini import check_batch_name

    target = gemini_target(kwargs)
    if target is None:
        return None
    return RawSpec(f"{target.base}/", target.headers, lambda batch_id, doc: decode_gemini(batch_id, dict(doc)),
                   timeout=target.timeout, check_id=check_batch_name)
