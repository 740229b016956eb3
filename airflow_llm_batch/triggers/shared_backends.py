"""One backend (one SDK client) per connection per event loop, shared by the triggers that use it.

Building an SDK client costs ~40 ms CPU and ~1 MB (TLS bundle), and the first use imports the SDK
(~1 s for openai): a triggerer watching a thousand tasks on one connection pays that once, in a
thread, so its event loop never stalls.

The shared client talks HTTP through aiohttp, not the SDK's default httpx pool: with a thousand polls
in flight httpcore re-scans every pooled connection for every queued request (cost ~ square of the
requests in flight; the loop was 97% busy at 233 polls/s), while aiohttp's connector queues the
requests over a bounded set of keep-alive connections (``MAX_CONNECTIONS``): polls beyond it wait
their turn instead of opening a thousand sockets at once. Measured with ``bench/trigger_load.py``.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from airflow_llm_batch.hooks import hook_class
from airflow_llm_batch.hooks.options import with_options
from airflow_llm_batch.pipeline.backend import BatchBackend

#: connections of one shared client (and so its requests in flight); the rest wait in aiohttp's queue
MAX_CONNECTIONS = 64
#: the SDK whose aiohttp-based ``DefaultAioHttpClient`` each provider's async client takes
AIOHTTP_SDK = {"openai": "openai", "azure_openai": "openai", "openai_compatible": "openai",
               "anthropic": "anthropic"}

Slot = tuple[str, str, str, int]
_SHARED: dict[Slot, tuple[BatchBackend, int]] = {}
_LOCKS: dict[int, asyncio.Lock] = {}


async def _build(provider: str, conn_id: str, options: Mapping[str, Any] | None = None) -> BatchBackend:
    hook = (await asyncio.to_thread(hook_class, provider))(conn_id)
    conn = with_options(await hook.aget_connection(hook.conn_id), options)
    hook.http_client = await asyncio.to_thread(aiohttp_client, provider)
    return await asyncio.to_thread(hook.backend_from_connection, conn)


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
    loop_id = id(asyncio.get_running_loop())
    slot = (provider, conn_id, json.dumps(options or {}, sort_keys=True), loop_id)
    lock = _LOCKS.setdefault(loop_id, asyncio.Lock())
    async with lock:  # two triggers starting together must not build two clients
        if slot in _SHARED:
            backend, users = _SHARED[slot]
            _SHARED[slot] = (backend, users + 1)
        else:
            backend = await _build(provider, conn_id, options)
            _SHARED[slot] = (backend, 1)
    try:
        yield backend
    finally:
        async with lock:
            backend, users = _SHARED[slot]
            if users <= 1:
                del _SHARED[slot]
                await backend.aclose()
            else:
                _SHARED[slot] = (backend, users - 1)
