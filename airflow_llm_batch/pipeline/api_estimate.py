"""``estimate="api"``: each request line's prompt tokens counted by the provider's free count-tokens
endpoint, replacing the offline tokenizer's count in the chunks to send, before the budget check.

A backend that has such an endpoint has an async ``count_tokens(request_line) -> int`` (Anthropic and
Gemini); any other falls back to the offline tokenizer, said in one log line. Lines are counted
concurrently, at most :data:`MAX_IN_FLIGHT` at a time, each line once. A line whose count fails keeps
the tokenizer's count; the failures are summed up in one warning and never stop the run.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from airflow_llm_batch.pipeline.manifest import ChunkRecord
from airflow_llm_batch.pipeline.storage import StoragePath
from airflow_llm_batch.pipeline.tokens import estimate_tokens

log = logging.getLogger(__name__)

#: count-tokens calls in flight at once
MAX_IN_FLIGHT = 16
Counter = Callable[[dict[str, Any]], Awaitable[int]]


async def count_with_api(backend: Any, folder: StoragePath, chunks: Iterable[ChunkRecord],
                         provider: str) -> None:
    """Set each chunk's ``tokens`` to the provider's count of its lines (see the module docstring)."""
    counter: Counter | None = getattr(backend, "count_tokens", None)
    if counter is None:
        log.info("estimate='api': %s has no count-tokens endpoint; the estimate uses the offline tokenizer",
                 provider)
        return
    limit = asyncio.Semaphore(MAX_IN_FLIGHT)
    failures: list[str] = []
    for chunk in chunks:
        with (folder / chunk.requests).open("rb") as handle:
            lines = handle.read().splitlines()
        counts = await asyncio.gather(*(_count(counter, line, limit, failures) for line in lines if line.strip()))
        chunk.tokens = sum(counts)
    if failures:
        log.warning("estimate='api': %d request line(s) could not be counted by %s (first: %s); those use "
                    "the offline tokenizer's count", len(failures), provider, failures[0])
    log.info("estimate='api': prompt tokens counted by the %s count-tokens endpoint", provider)


async def _count(counter: Counter, line: bytes, limit: asyncio.Semaphore, failures: list[str]) -> int:
    async with limit:
        try:
            return await counter(json.loads(line))
        except Exception as exc:  # any failure: the tokenizer's count stands in, the run goes on
            failures.append(type(exc).__name__)
            return estimate_tokens(line)
