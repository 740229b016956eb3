"""One backend (one SDK client) per connection per event loop, shared by the triggers that use it.

Building an SDK client costs ~40 ms CPU and ~1 MB (TLS bundle), and the first use imports the SDK
(~1 s for openai): a triggerer watching a thousand tasks on one connection pays that once, in a
thread, so its event loop never stalls.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from airflow_llm_batch.hooks import hook_class
from airflow_llm_batch.hooks.options import with_options
from airflow_llm_batch.pipeline.backend import BatchBackend

Slot = tuple[str, str, str, int]
_SHARED: dict[Slot, tuple[BatchBackend, int]] = {}
_LOCKS: dict[int, asyncio.Lock] = {}


async def _build(provider: str, conn_id: str, options: Mapping[str, Any] | None = None) -> BatchBackend:
    hook = (await asyncio.to_thread(hook_class, provider))(conn_id)
    conn = with_options(await hook.aget_connection(hook.conn_id), options)
    return await asyncio.to_thread(hook.backend_from_connection, conn)


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
