"""An OpenAI batch backend whose results files are local files: the collect path of a task, from the
downloaded bytes on, without HTTP (bench/prepare_and_parse.py's collect phase).

``OpenAIBatchBackend`` is the package's own (of whichever checkout is imported), over a stand-in for the
two client calls ``results()`` makes: ``batches.retrieve`` (the batch's output file id) and
``files.with_streaming_response.content`` (the file's bytes, in 64 KiB pieces, as httpcore reads a
response). The answers are gathered by the package's own ``answers_ahead.fetch_answers``, as the
collector gathers them, so every per-line and per-answer step of a real collect is in the figure.

Example::

    backend = local_backend(openai_module, folder / "outputs")
    answers = asyncio.run(fetch_answers(backend, "batch_bench_00000", True))
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

#: the size of the pieces a download is read in (httpcore reads 64 KiB at a time)
PIECE = 64 * 1024


class _LocalResponse:
    def __init__(self, path: Path) -> None:
        self.path = path

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        with self.path.open("rb") as fh:
            while piece := fh.read(PIECE):
                yield piece


def _client(outputs: Path) -> Any:
    """The part of ``AsyncOpenAI`` that ``results()`` uses: batch ``batch_bench_00003``'s output file is
    ``outputs/00003.output.jsonl``."""

    async def retrieve(batch_id: str) -> Any:
        return SimpleNamespace(id=batch_id, output_file_id=batch_id.rsplit("_", 1)[-1], error_file_id=None)

    @contextlib.asynccontextmanager
    async def content(file_id: str) -> AsyncIterator[_LocalResponse]:
        yield _LocalResponse(outputs / f"{file_id}.output.jsonl")

    async def close() -> None:
        return None

    return SimpleNamespace(base_url=f"file://{outputs}", max_retries=0, close=close,
                           batches=SimpleNamespace(retrieve=retrieve),
                           files=SimpleNamespace(with_streaming_response=SimpleNamespace(content=content)))


def local_backend(openai_module: ModuleType, outputs: Path) -> Any:
    """The package's ``OpenAIBatchBackend`` reading the results files in ``outputs``."""
    return openai_module.OpenAIBatchBackend(_client(outputs))
