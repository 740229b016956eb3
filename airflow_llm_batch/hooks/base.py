"""What every provider hook offers: an async backend built from an Airflow connection."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from airflow.sdk import BaseHook
from airflow.sdk.definitions.connection import Connection

from airflow_llm_batch.hooks.connection_check import check_connection
from airflow_llm_batch.pipeline.backend import BatchBackend

# The SDKs log one INFO line per HTTP request through httpx; at thousands of polls that is noise and
# CPU (measured 15-25% of a poll). Warnings and errors still come through.
for _name in ("httpx", "httpx2"):
    logging.getLogger(_name).setLevel(logging.WARNING)


class LLMBatchHook(BaseHook):
    """Base of the provider hooks: ``aget_backend()`` in async code (trigger), ``get_backend()`` elsewhere.

    Subclasses set the Airflow connection attributes and implement ``backend_from_connection``.
    Secrets are read from the connection when a backend is built, never stored on the hook's kwargs.
    """

    provider: ClassVar[str]
    conn_name_attr = "conn_id"
    default_conn_name: ClassVar[str]
    #: HTTP client of the async SDK client (None: the SDK's own httpx pool); the triggerer sets an aiohttp
    #: one with bounded connections (triggers/shared_backends.py). Gemini and Vertex ignore it.
    http_client: Any = None

    def __init__(self, conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id or self.default_conn_name

    def backend_from_connection(self, conn: Connection) -> BatchBackend:
        raise NotImplementedError

    async def aget_backend(self) -> BatchBackend:
        """Build a backend inside the running event loop (the trigger's, or a worker's asyncio.run)."""
        return self.backend_from_connection(await self.aget_connection(self.conn_id))

    def get_backend(self) -> BatchBackend:
        return self.backend_from_connection(self.get_connection(self.conn_id))

    def get_conn(self) -> BatchBackend:
        return self.get_backend()

    def test_connection(self) -> tuple[bool, str]:
        """The connection form's Test button: one cheap authenticated call (list at most one batch)."""
        return check_connection(self.conn_id, self.probe)

    def probe(self) -> str:
        """Make one cheap authenticated call with the connection; say what it saw (no secrets)."""
        raise NotImplementedError
