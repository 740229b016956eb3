"""The contract every provider backend fulfils; the engine only talks to this."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Collection
from contextlib import aclosing
from dataclasses import dataclass
from typing import IO, ClassVar, Protocol

from airflow_llm_batch.pipeline.types import BatchLimits, BatchProgress, LLMRequest, RawResult

OpenChunk = Callable[[], IO[bytes]]


@dataclass(frozen=True)
class FindHints:
    """What a backend that cannot read a tag back (Anthropic) matches on instead: the chunk's request
    ``count``, its ``first_custom_id`` (checked once a batch's results exist), and the ids in
    ``exclude`` (this run's other batches), which are never a match.

    Example: ``await backend.find(tag, since, FindHints(count=100, exclude=manifest.batch_ids))``
    """

    count: int | None = None
    first_custom_id: str | None = None
    exclude: Collection[str] = ()


NO_HINTS = FindHints()


class BatchBackend(Protocol):
    """One provider's batch API, reached through an async client.

    A backend is mostly data (``name``, ``limits``) plus short async methods. ``tags`` are small
    string pairs (dag, task, run, chunk, and an ``llm_batch_tag`` that is unique per chunk attempt)
    that let an intent recorded without a batch id be found again.
    """

    name: ClassVar[str]
    limits: ClassVar[BatchLimits]

    def request_line(self, request: LLMRequest) -> dict[str, object]:
        """The JSON line (or inline request) that carries this request in a batch."""
        ...

    def custom_id_for(self, key: str) -> str:
        """The provider-safe custom_id for a user key (identity unless the provider restricts ids)."""
        ...

    async def submit(self, open_chunk: OpenChunk, count: int, tags: dict[str, str]) -> str:
        """Create a batch from a chunk file; return the provider's batch id."""
        ...

    async def find(self, tag: str, created_after: float, hints: FindHints = NO_HINTS) -> list[str]:
        """Ids of batches that may hold the chunk tagged ``tag``, created after ``created_after``.

        Providers that store the tag (OpenAI metadata, Gemini display name) match on it exactly and
        leave out ``hints.exclude``; providers without metadata (Anthropic) match on the
        :class:`FindHints`. Several matches make the engine refuse rather than pay twice.
        """
        ...

    async def progress(self, batch_id: str) -> BatchProgress: ...

    def results(self, batch_id: str) -> AsyncIterator[RawResult]:
        """Stream every answer the batch holds (succeeded and failed), in the provider's order."""
        ...

    def result_blocks(self, batch_id: str) -> AsyncIterator[list[RawResult]]:
        """:meth:`results` in lists (the same answers, in the same order; never an empty list): what the
        collector reads, one async step per list instead of per answer. A backend whose download is read
        in pieces yields an answer list per piece; any other can give ``answer_blocks(self.results(...))``."""
        ...

    async def cancel(self, batch_id: str) -> None: ...

    async def aclose(self) -> None: ...


#: answers per list of :func:`answer_blocks`
ANSWER_BLOCK = 512


async def answer_blocks(answers: AsyncIterable[RawResult], size: int = ANSWER_BLOCK) -> AsyncIterator[list[RawResult]]:
    """``answers`` in lists of ``size`` (the last one shorter): ``result_blocks`` of a backend whose
    answers come one at a time."""
    block: list[RawResult] = []
    async for answer in answers:
        block.append(answer)
        if len(block) >= size:
            yield block
            block = []
    if block:
        yield block


async def each_answer(blocks: AsyncGenerator[list[RawResult], None]) -> AsyncGenerator[RawResult, None]:
    """The answers of ``blocks`` one at a time: ``results`` of a backend that reads them in lists (closing
    it closes ``blocks``, and so the download they read)."""
    async with aclosing(blocks) as opened:
        async for block in opened:
            for answer in block:
                yield answer
