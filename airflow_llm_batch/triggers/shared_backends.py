"""One backend (one SDK client) per connection per event loop, shared by the triggers that use it.

Building an SDK client costs ~40 ms CPU and ~1 MB (TLS bundle), and the first use imports the SDK
(~1 s for openai): a triggerer watching a thousand tasks on one connection pays that once, in a
thread, so its event loop never stalls.

The shared client talks HTTP through aiohttp, not the SDK's default httpx pool: with a thousand polls
in flight httpcore re-scans every pooled connection for every queued request (cost ~ square of the
requests in flight; the loop was 97% busy at 233 polls/s), while aiohttp's connector queues the
requests over a bounded set of keep-alive connections (``MAX_CONNECTIONS``): polls beyond it wait
their turn instead of opening a thousand sockets at once. Measured with ``bench/trigger_load.py``.

Polls skip the SDK altogether where they can: :func:`shared_poller` hands out the connection's
:class:`~airflow_llm_batch.triggers.raw_poll.RawPoller` (one GET on a shared HTTP client, the
backend's own status decoder), built with the backend from the same client settings; providers
without one (Vertex, token-based auth) poll through the backend.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from airflow_llm_batch.hooks import hook_class
from airflow_llm_batch.hooks.options import with_options
from airflow_llm_batch.pipeline.backend import BatchBackend
from airflow_llm_batch.pipeline.vanished import Polls
from airflow_llm_batch.triggers.raw_poll import MAX_CONNECTIONS, RawPoller, raw_poller

#: the SDK whose aiohttp-based ``DefaultAioHttpClient`` each provider's async client takes
AIOHTTP_SDK = {"openai": "openai", "azure_openai": "openai", "openai_compatible": "openai",
               "anthropic": "anthropic"}

Slot = tuple[str, str, str, int]


@dataclass(frozen=True)
class Shared:
    """What the triggers of one connection share: the backend and, where there is one, the raw poller."""

    backend: BatchBackend
    poller: RawPoller | None = None

    async def aclose(self) -> None:
        if self.poller is not None:
            await self.poller.aclose()
        await self.backend.aclose()


_SHARED: dict[Slot, tuple[Shared, int]] = {}
_LOCKS: dict[int, asyncio.Lock] = {}


async def _build(provider: str, conn_id: str, options: Mapping[str, Any] | None = None) -> Shared:
    hook = (await asyncio.to_thread(hook_class, provider))(conn_id)
    conn = with_options(await hook.aget_connection(hook.conn_id), options)
    hook.http_client = await asyncio.to_thread(aiohttp_client, provider)
    backend = await asyncio.to_thread(hook.backend_from_connection, conn)
    kwargs = hook.client_kwargs(conn) if provider == "gemini" else None  # type: ignore[attr-defined]
    return Shared(backend, raw_poller(provider, getattr(backend, "client", None), kwargs))


def aiohttp_client(provider: str, max_connections: int = MAX_CONNECTIONS) -> Any:
    """The SDK's aiohttp-backed HTTP client with at most ``max_connections`` open (None: the provider's
    SDK has none, e.g. google-genai, and keeps its default transport).

    Example: ``AsyncOpenAI(api_key="k", http_client=aiohttp_client("openai"))``
    """
    sdk = AIOHTTP_SDK.get(provider)
    if sdk is None:
        return None
    import httpx2  # the HTTP layer of both SDKs (a dependency of each)

    limits = httpx2.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return importlib.import_module(sdk).DefaultAioHttpClient(limits=limits)


@asynccontextmanager
async def shared_backend(provider: str, conn_id: str,
                         options: Mapping[str, Any] | None = None) -> AsyncIterator[BatchBackend]:
    """The connection's backend, shared by the triggers of this event loop."""
    async with _shared(provider, conn_id, options) as shared:
        yield shared.backend


@asynccontextmanager
async def shared_poller(provider: str, conn_id: str, options: Mapping[str, Any] | None = None) -> AsyncIterator[Polls]:
    """What a trigger polls with: the connection's raw poller, or its backend where there is none."""
    async with _shared(provider, conn_id, options) as shared:
        yield shared.poller or shared.backend


@asynccontextmanager
async def _shared(provider: str, conn_id: str, options: Mapping[str, Any] | None) -> AsyncIterator[Shared]:
    loop_id = id(asyncio.get_running_loop())
    slot = (provider, conn_id, json.dumps(options or {}, sort_keys=True), loop_id)
    lock = _LOCKS.setdefault(loop_id, asyncio.Lock())
    async with lock:  # two triggers starting together must not build two clients
        if slot in _SHARED:
            shared, users = _SHARED[slot]
            _SHARED[slot] = (shared, users + 1)
        else:
            shared = await _build(provider, conn_id, options)
            _SHARED[slot] = (shared, 1)
    try:
        yield shared
    finally:
        async with lock:
            shared, users = _SHARED[slot]
            if users <= 1:
                del _SHARED[slot]
                await shared.aclose()
            else:
                _SHARED[slot] = (shared, users - 1)
