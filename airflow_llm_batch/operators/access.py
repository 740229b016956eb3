"""How a task reaches its provider: the hook and connection, resolved on the worker once per try.

A backend (and its SDK client) is built only inside :meth:`ProviderAccess.run`, in the event loop
that uses it, and closed there. Steps that only read or write the run's files need no client: they
use the run folder's ManifestStore (see operators/run_context.py).

Example: ``ProviderAccess.resolve("openai", None, {"max_retries": 7}).run(folder, tags, work)``
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from airflow.sdk import ObjectStoragePath
from airflow.sdk.definitions.connection import Connection

from airflow_llm_batch.hooks import LLMBatchHook, hook_class
from airflow_llm_batch.hooks.options import check_options, with_options
from airflow_llm_batch.pipeline.run import BatchRun

T = TypeVar("T")


@dataclass
class ProviderAccess:
    """A provider + connection, resolved on the worker. Backends are built per event loop."""

    provider: str
    conn_id: str
    hook: LLMBatchHook
    conn: Connection

    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def resolve(cls, provider: str, conn_id: str | None, options: Mapping[str, Any] | None = None) -> ProviderAccess:
        """``options`` override the connection's extras for this task (see hooks/options.py)."""
        hook = hook_class(provider)(conn_id)
        checked = check_options(options)
        return cls(provider, hook.conn_id, hook, with_options(hook.get_connection(hook.conn_id), checked), checked)

    def run(self, folder: ObjectStoragePath, tags: dict[str, str], work: Callable[[BatchRun], Awaitable[T]],
            **options: Any) -> T:
        """Run ``work`` with a BatchRun whose backend lives (and is closed) in one event loop."""

        async def _go() -> T:
            backend = self.hook.backend_from_connection(self.conn)
            try:
                return await work(BatchRun(folder, backend, tags=tags, **options))
            finally:
                await backend.aclose()

        return asyncio.run(_go())
