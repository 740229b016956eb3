"""The retry chunk: the rows of an ended chunk worth another attempt, copied into a new chunk
(attempt + 1) that is submitted like any other."""

from __future__ import annotations

import json
from typing import Any

from airflow_llm_batch.pipeline.adopt import ADOPTED_ID
from airflow_llm_batch.pipeline.manifest import ChunkRecord, Manifest
from airflow_llm_batch.pipeline.prepare import chunk_name
from airflow_llm_batch.pipeline.storage import AtomicWriter, StoragePath
from airflow_llm_batch.pipeline.tokens import estimate_tokens


def retry_chunk(folder: StoragePath, manifest: Manifest, source: ChunkRecord, positions: list[int],
                keys: list[dict[str, Any]]) -> ChunkRecord:
    """Copy the request lines at ``positions`` of ``source`` into a new chunk (attempt + 1).

    ``keys`` are the key index entries of those rows; the custom_id a row had in an adopted batch
    is dropped, since the new chunk is sent by this run under the row's own custom_id.
    """
    index, attempt = len(manifest.chunks), source.attempt + 1
    name = chunk_name(index, attempt)
    requests, key_file = f"chunks/{name}.requests.jsonl", f"chunks/{name}.keys.jsonl"
    wanted, size, tokens = set(positions), 0, 0
    with (folder / source.requests).open("rb") as src, AtomicWriter(folder / requests) as out:
        for position, line in enumerate(src):
            if position in wanted:
                out.write(line)
                size += len(line)
                tokens += estimate_tokens(line)
    with AtomicWriter(folder / key_file) as out:
        for entry in keys:
            own = {k: v for k, v in entry.items() if k != ADOPTED_ID}
            out.write((json.dumps(own, ensure_ascii=False, default=str) + "\n").encode())
    return ChunkRecord(index, len(positions), size, requests, key_file, attempt=attempt, tokens=tokens,
                       retry_of=source.index)
