"""The triggerer's shared SDK client: aiohttp transport, a bounded set of connections per client."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import anthropic
import openai
import psutil
import pytest
from openai import OpenAI

from airflow_llm_batch.triggers.shared_backends import MAX_CONNECTIONS, aiohttp_client, shared_backend
from tests.triggers.test_batch_trigger import make_batch


@pytest.fixture
def client(emulator: Any) -> Iterator[OpenAI]:
    with OpenAI(base_url=emulator.openai_base_url, api_key="test-key") as c:
        yield c


def open_connections_to(port: int) -> int:
    """This process's client-side TCP connections to ``port`` that are still open."""
    return sum(1 for c in psutil.Process().net_connections("tcp")
               if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED)


async def test_a_burst_of_polls_shares_a_bounded_set_of_connections(emulator: Any, client: OpenAI) -> None:
    """200 polls at once (a triggerer's first round): every poll answers, over at most MAX_CONNECTIONS sockets
    (the SDK's default httpx pool opened one per poll in flight and kept 100)."""
    ids = [make_batch(client, rows=1) for _ in range(3)]
    port = urlparse(emulator.openai_base_url).port
    assert port is not None
    before = open_connections_to(port)  # the sync client's keep-alive socket
    async with shared_backend("openai", "llm_emulator") as backend:
        progress = await asyncio.gather(*(backend.progress(ids[i % 3]) for i in range(200)))
        opened = open_connections_to(port) - before
    assert [p.batch_id for p in progress] == [ids[i % 3] for i in range(200)]
    assert 0 < opened <= MAX_CONNECTIONS


def test_aiohttp_client_per_sdk() -> None:
    assert isinstance(aiohttp_client("openai"), openai.DefaultAioHttpClient)
    assert isinstance(aiohttp_client("azure_openai"), openai.DefaultAioHttpClient)
    assert isinstance(aiohttp_client("anthropic"), anthropic.DefaultAioHttpClient)
    assert aiohttp_client("gemini") is None and aiohttp_client("vertex") is None


async def test_anthropic_triggers_poll_through_the_aiohttp_client(emulator: Any) -> None:
    """The Anthropic hook takes the shared aiohttp client too: a poll of an unknown batch is a real 404."""
    async with shared_backend("anthropic", "anthropic_emulator") as backend:
        transport = backend.client._client._transport  # type: ignore[attr-defined]
        with pytest.raises(anthropic.NotFoundError):
            await backend.progress("msgbatch_unknown")
    assert type(transport).__name__ == "AiohttpTransport"
