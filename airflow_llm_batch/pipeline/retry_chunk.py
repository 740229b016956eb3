"""The retry chunk: the rows of an ended chunk worth another attempt, copied into a new chunk
(attempt + 1) that is submitted like any other."""

from __future__ import annotations

from airflow_llm_batch.pipeline.chunk_files import ChunkFiles, chunk_name
from airflow_llm_batch.pipeline.key_index import KeyEntry, write_key_index
from airflow_llm_batch.pipeline.manifest import ChunkRecord, Manifest
from airflow_llm_batch.pipeline.storage import AtomicWriter, StoragePath


def retry_chunk(folder: StoragePath, manifest: Manifest, source: ChunkRecord,
                rows: list[tuple[int, KeyEntry]]) -> ChunkRecord:
    """Copy the request lines at the positions of ``rows`` in ``source`` into a new chunk (attempt + 1).

    ``rows`` are (position, key entry) of those rows; the custom_id a row had in an adopted batch
    is dropped, since the new chunk is sent by this run under the row's own custom_id.
    """
    index, attempt = len(manifest.chunks), source.attempt + 1
    name = chunk_name(index, attempt)
    files = ChunkFiles(index, f"chunks/{name}.requests.jsonl", f"chunks/{name}.keys.jsonl")
    wanted = {position for position, _ in rows}
    with (folder / source.requests).open("rb") as src, AtomicWriter(folder / files.requests) as out:
        for position, line in enumerate(src):
            if position in wanted:
                out.write(line)
                files.add(line)
    write_key_index(folder / files.keys, (entry.adopted_as(None) for _, entry in rows))
    return ChunkRecord(index, files.count, files.bytes, files.requests, files.keys, attempt=attempt,
                       tokens=files.tokens, retry_of=source.index)
