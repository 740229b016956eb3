"""Where a Vertex AI batch prediction job reads its chunk and writes its answers (:class:`VertexStaging`,
from the connection's ``vertex_staging_uri`` / ``vertex_output_uri``), and moving them: staging a
chunk (:func:`stage_chunk`) and reading a job's output records (:func:`output_records`), through the
Cloud Storage and BigQuery clients of :class:`~airflow_llm_batch.google.clients.GoogleClients`.

Everything here is streamed on worker threads: staging, downloads and pages never hold a chunk in
memory, and the event loop (the triggerer's) never blocks.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from google.genai import types

from airflow_llm_batch.backends.json_lines import json_object
from airflow_llm_batch.exceptions import InvalidInputError, ProviderError
from airflow_llm_batch.google.clients import GoogleClients
from airflow_llm_batch.google.uris import BigQueryDataset, GcsPrefix, split_gs
from airflow_llm_batch.pipeline.backend import OpenChunk

log = logging.getLogger(__name__)
T = TypeVar("T")

MIB = 1024 * 1024
UPLOAD_CHUNK_BYTES = 8 * MIB
DOWNLOAD_CHUNK_BYTES = 8 * MIB
LINES_PER_HOP = 2000
BIGQUERY_PAGE_ROWS = 5000
LOAD_TIMEOUT_SECONDS = 1800.0

Location = GcsPrefix | BigQueryDataset
OutputRecord = Mapping[str, Any] | None


def _location(uri: str, project: str | None, what: str) -> Location:
    text = uri.strip()
    try:
        if text.startswith("gs://"):
            return GcsPrefix.parse(text)
        if text.startswith("bq://"):
            return BigQueryDataset.parse(text, project)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{what} {exc}") from exc
    raise InvalidInputError(f"{what} {uri!r}: use gs://BUCKET/PREFIX or bq://PROJECT.DATASET")


@dataclass(frozen=True)
class VertexStaging:
    """Where chunks are staged for the jobs (``input``) and where the jobs write (``output``).

    Example: ``VertexStaging.parse("gs://my-bucket/llm-batch", output="bq://my-project.llm_results")``
    """

    input: Location
    output: Location

    @classmethod
    def parse(cls, staging: str | None, output: str | None = None, project: str | None = None) -> VertexStaging:
        if not staging:
            raise InvalidInputError("Vertex batch prediction needs a staging location for its input: set the "
                                    "connection extra 'vertex_staging_uri' to gs://BUCKET/PREFIX or "
                                    "bq://PROJECT.DATASET")
        source = _location(staging, project, "vertex_staging_uri")
        if output:
            return cls(source, _location(output, project, "vertex_output_uri"))
        if isinstance(source, GcsPrefix):
            return cls(source, GcsPrefix(source.bucket, "/".join(p for p in (source.prefix, "output") if p)))
        return cls(source, source)

    def input_for(self, tag: str) -> str:
        if isinstance(self.input, GcsPrefix):
            return self.input.child(tag, "requests.jsonl")
        return self.input.table_id(_table_name("llmb_in", tag))

    def output_for(self, tag: str) -> str:
        if isinstance(self.output, GcsPrefix):
            return self.output.child(tag)
        return f"bq://{self.output.table_id(_table_name('llmb_out', tag))}"


def _table_name(prefix: str, tag: str) -> str:
    return f"{prefix}_{re.sub(r'[^A-Za-z0-9_]', '_', tag)}"[:1024]


# -- staging a chunk ---------------------------------------------------------------------------------
async def stage_chunk(staging: VertexStaging, clients: GoogleClients, open_chunk: OpenChunk, tag: str) -> str:
    """Put the chunk where the job reads it (a repeated stage overwrites, never adds); the job's source."""
    target = staging.input_for(tag)
    gcs = isinstance(staging.input, GcsPrefix)
    try:
        await asyncio.to_thread(_upload if gcs else _load, clients, open_chunk, target)
    except InvalidInputError:
        raise
    except Exception as exc:  # google.api_core errors: a missing bucket/dataset, no access
        raise ProviderError(f"staging the chunk at {target} failed ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:300]}); nothing was submitted") from exc
    return target if gcs else f"bq://{target}"


def _upload(clients: GoogleClients, open_chunk: OpenChunk, uri: str) -> None:
    bucket, name = split_gs(uri)
    blob = clients.gcs().bucket(bucket).blob(name, chunk_size=UPLOAD_CHUNK_BYTES)
    with open_chunk() as fh:  # a resumable upload in chunks: memory stays at one chunk
        blob.upload_from_file(fh, content_type="application/octet-stream")


def _load(clients: GoogleClients, open_chunk: OpenChunk, table_id: str) -> None:
    """A load job of (key STRING, model STRING, request JSON); WRITE_TRUNCATE never doubles rows."""
    from google.cloud import bigquery

    schema = [bigquery.SchemaField("key", "STRING", mode="REQUIRED"), bigquery.SchemaField("model", "STRING"),
              bigquery.SchemaField("request", "JSON", mode="REQUIRED")]
    config = bigquery.LoadJobConfig(source_format="NEWLINE_DELIMITED_JSON", schema=schema,
                                    write_disposition="WRITE_TRUNCATE")
    with open_chunk() as fh:
        job = clients.bigquery().load_table_from_file(fh, table_id, job_config=config, rewind=True)
        job.result(timeout=LOAD_TIMEOUT_SECONDS)


# -- reading a job's output ------------------------------------------------------------------------
def output_records(clients: GoogleClients, job: types.BatchJob) -> AsyncIterator[OutputRecord] | None:
    """The job's output records (a predictions.jsonl line, None when unreadable; or a BigQuery row),
    or None when the job wrote no output."""
    info = job.output_info
    if info is not None and info.gcs_output_directory:
        folder = str(info.gcs_output_directory)
        return _in_thread(lambda: _gcs_records(clients, folder))
    if info is not None and info.bigquery_output_table:
        table = _output_table(job, str(info.bigquery_output_table))
        return _in_thread(lambda: _bigquery_records(clients, table))
    return None


def _gcs_records(clients: GoogleClients, folder: str) -> Iterator[OutputRecord]:
    bucket, prefix = split_gs(folder)
    for blob in clients.gcs().list_blobs(bucket, prefix=f"{prefix}/" if prefix else None):
        if not blob.name.endswith(".jsonl"):
            continue
        with blob.open("rb", chunk_size=DOWNLOAD_CHUNK_BYTES) as fh:
            yield from (json_object(line) for line in fh if line.strip())


def _bigquery_records(clients: GoogleClients, table_id: str) -> Iterator[OutputRecord]:
    for row in clients.bigquery().list_rows(table_id, page_size=BIGQUERY_PAGE_ROWS):
        yield dict(row.items())


def _output_table(job: types.BatchJob, table: str) -> str:
    """``project.dataset.table`` of a BigQuery output (the job names the table; dest names the dataset)."""
    uri = (job.dest.bigquery_uri if job.dest is not None else None) or ""
    try:
        return BigQueryDataset.parse(".".join(uri.split(".")[:2])).table_id(table.split(".")[-1])
    except InvalidInputError:
        return table


def _take(iterator: Iterator[T], count: int) -> list[T]:
    items: list[T] = []
    for item in iterator:
        items.append(item)
        if len(items) >= count:
            break
    return items


async def _in_thread(make: Callable[[], Iterator[T]], per_hop: int = LINES_PER_HOP) -> AsyncIterator[T]:
    """Drive a blocking iterator on worker threads, ``per_hop`` items at a time (bounded memory)."""
    iterator = make()
    try:
        while True:
            items = await asyncio.to_thread(_take, iterator, per_hop)
            if not items:
                return
            for item in items:
                yield item
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            await asyncio.to_thread(close)


__all__ = ["GoogleClients", "VertexStaging", "output_records", "stage_chunk"]
