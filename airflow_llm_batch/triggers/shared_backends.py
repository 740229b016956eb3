"""One backend (one SDK client) per connection per event loop, shared by the triggers that use it.

Building an SDK client costs ~40 ms CPU and ~1 MB (TLS bundle); a triggerer watching a thousand
tasks on one connection should pay that once, not a thousand times.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from airflow_llm_batch.hooks import hook_class
from airflow_llm_batch.pipeline.backend import BatchBackend

_SHARED: dict[tuple[str, str, int], tuple[BatchBackend, int]] = {}


@asynccontextmanager
async def shared_backend(provider: str, conn_id: str) -> AsyncIterator[BatchBackend]:
    slot = (provider, conn_id, id(asyncio.get_running_loop()))
    if slot in _SHARED:
        backend, users = _SHARED[slot]
        _SHARED[slot] = (backend, users + 1)
    else:
        # the first use imports the provider SDK (~1 s for openai) and builds a client (TLS bundle):
        # both run in a thread so the triggerer's event loop never stalls
        hook = (await asyncio.to_thread(hook_class, provider))(conn_id)
        conn = await hook.aget_connection(hook.conn_id)
        backend = await asyncio.to_thread(hook.backend_from_connection, conn)
        _SHARED[slot] = (backend, 1)
    try:
        yield backend
    finally:
        backend, users = _SHARED[slot]
        if users <= 1:
            del _SHARED[slot]
            await backend.aclose()
        else:
            _SHARED[slot] = (backend, users - 1)
