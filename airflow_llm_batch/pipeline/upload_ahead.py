"""Uploading the next chunk's file while the current chunk's batch is created.

An upload costs nothing (only a batch create does), so the submitter starts the upload of the next
chunk it will create as soon as it starts on the current one: the two uploads share the wait, and the
next create finds its file already there. The creates themselves stay one at a time, each after its
intent is saved (submitter.py), so at most one chunk is ever in the SUBMITTING state.

Backends that upload and create in two calls (OpenAI and the OpenAI-shaped ones) say so by having
``upload``, ``create_uploaded`` and ``discard_upload`` on their class (:class:`StagedBackend`);
others are used through ``submit`` as before. A staged backend's ``submit`` must be ``upload`` then
``create_uploaded`` (a check before any upload belongs in ``upload``, as in openai_compatible.py).
A file uploaded ahead whose chunk was not created in the same call (admission changed, or an error
stopped the loop) is deleted.

Example::

    ahead = UploadsAhead(backend, open_chunk)
    try:
        ahead.start(next_chunk.requests, tags)
        batch_id = await ahead.create(chunk.requests, chunk.count, tags)
    finally:
        await ahead.aclose()
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol, cast

from airflow_llm_batch.pipeline.backend import BatchBackend, OpenChunk

log = logging.getLogger(__name__)


class StagedBackend(Protocol):
    """A backend whose batch create is an upload (free) followed by a create (paid)."""

    async def upload(self, open_chunk: OpenChunk, tags: dict[str, str]) -> str: ...

    async def create_uploaded(self, file_id: str, open_chunk: OpenChunk, tags: dict[str, str]) -> str: ...

    async def discard_upload(self, file_id: str) -> None: ...


def stages(backend: object) -> bool:
    """Whether ``backend``'s class uploads and creates in two calls. Asked of the class, not the
    instance: a wrapper that forwards attributes but overrides ``submit`` is used through ``submit``."""
    return all(callable(getattr(type(backend), name, None)) for name in ("upload", "create_uploaded", "discard_upload"))


class UploadsAhead:
    """The uploads started ahead of their creates in one submit call, by chunk file name."""

    def __init__(self, backend: BatchBackend, open_chunk: Callable[[str], OpenChunk]) -> None:
        self.backend, self.open_chunk = backend, open_chunk
        self.staged = cast(StagedBackend, backend) if stages(backend) else None
        self._uploads: dict[str, asyncio.Task[str]] = {}

    def start(self, requests: str, tags: dict[str, str]) -> None:
        """Begin uploading the chunk file ``requests`` (no-op for a backend that cannot stage)."""
        if self.staged is not None and requests not in self._uploads:
            self._uploads[requests] = asyncio.create_task(self.staged.upload(self.open_chunk(requests), tags))

    async def create(self, requests: str, count: int, tags: dict[str, str]) -> str:
        """Create the batch of the chunk file ``requests``, from its upload ahead when there is one."""
        if self.staged is None:
            return await self.backend.submit(self.open_chunk(requests), count, tags)
        self.start(requests, tags)
        await asyncio.sleep(0)  # the uploads started ahead send their first request before this create
        file_id = await self._uploads.pop(requests)
        return await self.staged.create_uploaded(file_id, self.open_chunk(requests), tags)

    async def aclose(self) -> None:
        """Stop uploads still running and delete the files no create used."""
        uploads, self._uploads = list(self._uploads.values()), {}
        for task in uploads:
            task.cancel()
        done = await asyncio.gather(*uploads, return_exceptions=True)
        for file_id in done:
            if isinstance(file_id, str) and self.staged is not None:
                log.info("Deleting file %s, uploaded ahead for a chunk not created in this call", file_id)
                await self.staged.discard_upload(file_id)
