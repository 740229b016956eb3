"""Gemini on Vertex AI batch prediction: each chunk staged in Cloud Storage (or a BigQuery table),
one ``batchPredictionJob`` per chunk, answers read back from Cloud Storage or BigQuery.

Client
    google-genai's async client (``genai.Client(vertexai=True).aio.batches``): native asyncio
    (aiohttp), so the triggerer polls without threads; it refreshes credentials in a thread. Its
    own retries are off (a blind retry of a create could pay twice); the backend retries reads
    itself and guards creates with a look-up (see below). Cloud Storage and BigQuery go through
    google-cloud-storage / google-cloud-bigquery (the clients of :mod:`airflow_llm_batch.google`),
    on worker threads, streamed: staging, downloads and pages never hold a chunk in memory.

Request lines
    ``{"key": custom_id, "model": model, "request": GenerateContentRequest}``. The service passes
    the fields beside ``request`` through to its output, so every answer carries its ``key`` and
    is joined by it, never by position. ``model`` names the job's model (and makes the request
    fingerprint model-specific). The prompt is one user turn, the system prompt
    ``systemInstruction``; a response schema -> ``generationConfig.responseMimeType =
    "application/json"`` + ``responseJsonSchema``; JSON without a schema -> the MIME type alone.
    ``request_params`` go into ``generationConfig`` (OpenAI spellings such as ``max_tokens`` and
    ``top_p`` are translated, see :mod:`airflow_llm_batch.backends.vertex_request`) or, for ``safety_settings``,
    ``tools``, ``tool_config``, ``labels``, ``cached_content``, the request itself; any other name
    is refused before anything is paid.

Where data goes (:class:`VertexStaging`, from the connection)
    * input: ``gs://bucket/prefix`` -> ``{prefix}/{tag}/requests.jsonl`` (streamed resumable
      upload); or ``bq://project.dataset`` -> table ``llmb_in_{tag}`` (key STRING, model STRING,
      request JSON) written by a load job (WRITE_TRUNCATE: a repeated stage never doubles rows),
      and the job reads BigQuery;
    * output: ``gs://bucket/prefix`` (default: ``{input prefix}/output``) -> the job writes
      ``{prefix}/{tag}/prediction-model-*/predictions.jsonl``; or ``bq://project.dataset`` -> table
      ``llmb_out_{tag}`` with ``key``, ``request``, ``response``, ``status`` columns.

Re-attach (``find``)
    A job carries the intent's tag twice: as the first word of its ``displayName`` and as the
    label ``llm_batch_tag``. ``find`` lists jobs with the server-side filter
    ``labels.llm_batch_tag="TAG" AND create_time>="..."`` and keeps those whose display name
    starts with the tag (google-genai does not return labels, so the name is the check that a
    filter the service ignored cannot fool).

States and errors
    Job states, row ``status`` texts, job errors and answers are decoded by
    :mod:`airflow_llm_batch.backends.generate_content`, shared with the Gemini backend: the same
    fault gives the same error code on both. ``PARTIALLY_SUCCEEDED`` is a completed job whose failed
    rows carry their own ``status``; ``EXPIRED`` and ``CANCELLED`` keep the rows answered before.
    google-genai's ``BatchJob.done`` is False for ``PARTIALLY_SUCCEEDED``: never relied on here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping
from typing import Any, ClassVar, TypeVar

import aiohttp
import httpx
from google.genai import Client, errors, types

from airflow_llm_batch.backends.generate_content import JOB_STATES, decode_answer, status_error
from airflow_llm_batch.backends.identity import ClientEndpoint
from airflow_llm_batch.backends.vertex_request import generate_content_request
from airflow_llm_batch.backends.vertex_staging import GoogleClients, VertexStaging
from airflow_llm_batch.exceptions import InvalidInputError, ProviderError
from airflow_llm_batch.pipeline.backend import OpenChunk
from airflow_llm_batch.pipeline.types import (
    BatchLimits,
    BatchProgress,
    BatchState,
    LLMRequest,
    RawResult,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

MIB = 1024 * 1024
#: tries of one job create after transient failures, each preceded by a look-up of the tag
CREATE_ATTEMPTS = 6
READ_ATTEMPTS = 4
UPLOAD_CHUNK_BYTES = 8 * MIB
DOWNLOAD_CHUNK_BYTES = 8 * MIB
LINES_PER_HOP = 2000
BIGQUERY_PAGE_ROWS = 5000
LOAD_TIMEOUT_SECONDS = 1800.0
_LABEL_CHARS = re.compile(r"[^a-z0-9_-]")
_LABELS = ("llm_batch_tag", "dag_id", "task_id", "chunk", "map_index")
_TRANSIENT = (aiohttp.ClientError, httpx.TransportError, asyncio.TimeoutError, ConnectionError)


# -- the backend --------------------------------------------------------------------------------------
class VertexBatchBackend:
    """Batch prediction jobs through google-genai (``vertexai=True``), data through GCS or BigQuery.

    Example::

        client = genai.Client(vertexai=True, project="my-project", location="us-central1")
        backend = VertexBatchBackend(client, staging=VertexStaging.parse("gs://my-bucket/llm-batch"),
                                     clients=GoogleClients(google_settings(), "my-project"))
    """

    name: ClassVar[str] = "vertex"
    limits: ClassVar[BatchLimits] = BatchLimits(
        # 200,000 requests per job; file (1 GB) and request sizes are unenforced (unconfirmed): kept under
        max_requests=200_000, max_bytes=1024 * MIB, max_request_bytes=20 * MIB,
        results_retention_seconds=29 * 86_400.0)  # results stay in the task's own output location
    endpoint_identity = ClientEndpoint()

    def __init__(self, client: Client, *, staging: VertexStaging, clients: GoogleClients,
                 create_retry_delays: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0),
                 read_retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0)) -> None:
        self.client = client
        self.staging = staging
        self.clients = clients
        self.create_retry_delays = create_retry_delays[: CREATE_ATTEMPTS - 1]
        self.read_retry_delays = read_retry_delays[: READ_ATTEMPTS - 1]

    # -- building ----------------------------------------------------------------------------------
    def custom_id_for(self, key: str) -> str:
        return key  # the key is a passthrough field: any string comes back unchanged

    def request_line(self, request: LLMRequest) -> dict[str, object]:
        return {"key": request.custom_id, "model": request.model, "request": self.generate_content_request(request)}

    def generate_content_request(self, request: LLMRequest) -> dict[str, Any]:
        """The ``GenerateContentRequest`` of one row."""
        return generate_content_request(request)

    # -- submitting --------------------------------------------------------------------------------
    async def submit(self, open_chunk: OpenChunk, count: int, tags: dict[str, str]) -> str:
        tag = tags.get("llm_batch_tag") or "chunk"
        model = await asyncio.to_thread(_chunk_model, open_chunk)
        source = await self._stage(open_chunk, tag)
        name = await self._create_once(model, source, self.staging.output_for(tag), tags)
        log.info("Created Vertex batch prediction job %s: %d requests from %s (intent %s)", name, count, source, tag)
        return name

    async def _stage(self, open_chunk: OpenChunk, tag: str) -> str:
        """Put the chunk where the job reads it (a repeated stage overwrites, never adds)."""
        target = self.staging.input_for(tag)
        try:
            if self.staging.input.scheme == "gs":
                await asyncio.to_thread(self._upload, open_chunk, target)
                return target
            await asyncio.to_thread(self._load, open_chunk, target)
            return f"bq://{target}"
        except InvalidInputError:
            raise
        except Exception as exc:  # google.api_core errors: a missing bucket/dataset, no access
            raise ProviderError(f"staging the chunk at {target} failed ({type(exc).__name__}: "
                                f"{str(exc).splitlines()[0][:300]}); nothing was submitted") from exc

    def _upload(self, open_chunk: OpenChunk, uri: str) -> None:
        bucket, _, name = uri[5:].partition("/")
        blob = self.clients.gcs().bucket(bucket).blob(name, chunk_size=UPLOAD_CHUNK_BYTES)
        with open_chunk() as fh:  # a resumable upload in chunks: memory stays at one chunk
            blob.upload_from_file(fh, content_type="application/octet-stream")

    def _load(self, open_chunk: OpenChunk, table_id: str) -> None:
        from google.cloud import bigquery

        schema = [bigquery.SchemaField("key", "STRING", mode="REQUIRED"), bigquery.SchemaField("model", "STRING"),
                  bigquery.SchemaField("request", "JSON", mode="REQUIRED")]
        config = bigquery.LoadJobConfig(source_format="NEWLINE_DELIMITED_JSON", schema=schema,
                                        write_disposition="WRITE_TRUNCATE")
        with open_chunk() as fh:
            job = self.clients.bigquery().load_table_from_file(fh, table_id, job_config=config, rewind=True)
            job.result(timeout=LOAD_TIMEOUT_SECONDS)

    async def _create_once(self, model: str, source: str, destination: str, tags: dict[str, str]) -> str:
        """Create the job without blind retries: after a transient failure the job may exist, so look
        for its tag before trying again (a blind retry could pay twice)."""
        tag, started = tags.get("llm_batch_tag", ""), time.time()
        config = types.CreateBatchJobConfig(
            display_name=_display_name(tag, tags), dest=destination,
            http_options=types.HttpOptions(extra_body={"labels": job_labels(tags)}))
        for delay in (*self.create_retry_delays, None):
            try:
                job = await self.client.aio.batches.create(model=model, src=source, config=config)
                return str(job.name)
            except errors.APIError as exc:
                if (exc.code < 500 and exc.code != 429) or delay is None:
                    raise _provider_error("Vertex AI refused the batch prediction job", exc) from exc
                reason = f"HTTP {exc.code}"
            except _TRANSIENT as exc:
                if delay is None:
                    raise ProviderError(f"cannot reach Vertex AI: {type(exc).__name__}: {exc}. The job may exist: "
                                        f"a retry of the task re-attaches to it") from exc
                reason = type(exc).__name__
            await asyncio.sleep(delay)
            found: list[str] = await self._reading(lambda: self.find(tag, started - 60))
            if found:
                log.info("Job create failed (%s) but job %s carries the tag: using it", reason, found[0])
                return found[0]
            log.warning("Job create failed (%s); no job carries the tag, trying again", reason)
        raise AssertionError("unreachable")

    async def find(self, tag: str, created_after: float, *, count: int | None = None,
                   first_custom_id: str | None = None, exclude: Collection[str] = ()) -> list[str]:
        """Jobs labelled and named with ``tag`` (exact; ``count`` and ``first_custom_id`` are not needed)."""
        since = dt.datetime.fromtimestamp(max(0.0, created_after), dt.timezone.utc)
        expression = (f'labels.llm_batch_tag="{_label_value(tag)}" AND '
                      f'create_time>="{since.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}"')
        found: list[str] = []
        pager = await self.client.aio.batches.list(config=types.ListBatchJobsConfig(filter=expression, page_size=100))
        async for job in pager:
            if job.create_time is not None and job.create_time.timestamp() < created_after:
                continue
            if (job.display_name or "").split(" ", 1)[0] == tag and job.name and job.name not in exclude:
                found.append(job.name)
        log.info("Intent %s: %d job(s) carry the tag: %s", tag, len(found), found)
        return found

    # -- polling -----------------------------------------------------------------------------------
    async def progress(self, batch_id: str) -> BatchProgress:
        try:
            job = await self.client.aio.batches.get(name=batch_id)
        except errors.APIError as exc:  # the trigger stops at once on a 4xx that polling cannot fix
            raise _provider_error(f"polling job {batch_id} failed", exc) from exc
        status = _state_name(job)
        stats = job.completion_stats
        succeeded = int(stats.successful_count or 0) if stats else 0
        failed = int(stats.failed_count or 0) if stats else 0
        incomplete = max(0, int(stats.incomplete_count or 0)) if stats else 0
        errors_: tuple[dict[str, Any], ...] = ()
        if status == "JOB_STATE_FAILED" and job.error is not None:
            code, message = status_error({"code": job.error.code, "message": job.error.message})
            errors_ = ({"code": code, "message": message},)
        return BatchProgress(batch_id=batch_id, state=JOB_STATES.get(status, BatchState.RUNNING),
                             provider_status=status.removeprefix("JOB_STATE_").lower(),
                             total=succeeded + failed + incomplete, completed=succeeded, failed=failed,
                             errors=errors_)

    # -- reading answers ---------------------------------------------------------------------------
    async def results(self, batch_id: str) -> AsyncIterator[RawResult]:
        try:
            job = await self._reading(lambda: self.client.aio.batches.get(name=batch_id))
        except errors.APIError as exc:
            raise _provider_error(f"reading job {batch_id} failed", exc) from exc
        info = job.output_info
        if info is not None and info.gcs_output_directory:
            records = _in_thread(lambda: self._gcs_records(str(info.gcs_output_directory)))
        elif info is not None and info.bigquery_output_table:
            records = _in_thread(lambda: self._bigquery_records(_output_table(job, str(info.bigquery_output_table))))
        else:
            log.info("Job %s (%s) wrote no output", batch_id, _state_name(job))
            return
        unjoinable = 0
        async for record in records:
            answer = decode_prediction(record)
            if answer is None:
                unjoinable += 1  # a broken line or a row without our key: its row ends missing_result
                continue
            yield answer
        if unjoinable:
            log.warning("Skipped %d unreadable output line(s) of job %s", unjoinable, batch_id)

    def _gcs_records(self, folder: str) -> Iterator[Mapping[str, Any] | None]:
        bucket, _, prefix = folder[5:].rstrip("/").partition("/")
        client = self.clients.gcs()
        for blob in client.list_blobs(bucket, prefix=f"{prefix}/" if prefix else None):
            if not blob.name.endswith(".jsonl"):
                continue
            with blob.open("rb", chunk_size=DOWNLOAD_CHUNK_BYTES) as fh:
                for line in fh:
                    if line.strip():
                        yield _json_or_none(line)

    def _bigquery_records(self, table_id: str) -> Iterator[Mapping[str, Any] | None]:
        for row in self.clients.bigquery().list_rows(table_id, page_size=BIGQUERY_PAGE_ROWS):
            yield dict(row.items())

    # -- the rest ----------------------------------------------------------------------------------
    async def cancel(self, batch_id: str) -> None:
        try:
            await self._reading(lambda: self.client.aio.batches.cancel(name=batch_id))
        except errors.APIError as exc:  # already ended, or unknown: nothing left to stop
            log.info("Cancel of job %s not applied (%s %s)", batch_id, exc.code, exc.status)

    async def aclose(self) -> None:
        await self.client.aio.aclose()
        await asyncio.to_thread(self.clients.close)

    async def _reading(self, call: Callable[[], Any]) -> Any:
        """An idempotent call, tried again after transient failures."""
        for delay in (*self.read_retry_delays, None):
            try:
                return await call()
            except errors.APIError as exc:
                if (exc.code < 500 and exc.code != 429) or delay is None:
                    raise
            except _TRANSIENT:
                if delay is None:
                    raise
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")


# -- helpers ------------------------------------------------------------------------------------------
def _chunk_model(open_chunk: OpenChunk) -> str:
    with open_chunk() as fh:
        first = fh.readline()
    model = json.loads(first).get("model") if first.strip() else None
    if not model:
        raise InvalidInputError("the chunk's first request line names no model; nothing was submitted")
    return str(model)


def _provider_error(action: str, exc: errors.APIError) -> ProviderError:
    """A ProviderError carrying the HTTP status (the trigger stops on the 4xx it cannot fix)."""
    return ProviderError(f"{action} ({exc.code} {exc.status}): {exc.message}", status_code=exc.code)


def _label_value(value: str) -> str:
    return _LABEL_CHARS.sub("_", value.lower())[:63]


def job_labels(tags: Mapping[str, str]) -> dict[str, str]:
    """The job's labels: the intent tag (for ``find``) and where it comes from, in label syntax."""
    return {name: _label_value(str(tags[name])) for name in _LABELS if tags.get(name)}


def _display_name(tag: str, tags: Mapping[str, str]) -> str:
    where = ".".join(str(tags[k]) for k in ("dag_id", "task_id") if tags.get(k))
    return f"{tag} {where} chunk {tags.get('chunk', '')}".strip()[:128]


def _state_name(job: types.BatchJob) -> str:
    state = job.state
    return str(getattr(state, "name", None) or state or "JOB_STATE_UNSPECIFIED")


def _output_table(job: types.BatchJob, table: str) -> str:
    """``project.dataset.table`` of a BigQuery output (the job names the table; dest names the dataset)."""
    uri = (job.dest.bigquery_uri if job.dest is not None else None) or ""
    parts = uri.removeprefix("bq://").split(".")
    return f"{parts[0]}.{parts[1]}.{table.split('.')[-1]}" if len(parts) >= 2 else table


def _json_or_none(line: bytes) -> Mapping[str, Any] | None:
    try:
        document = json.loads(line)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def decode_prediction(record: Mapping[str, Any] | None) -> RawResult | None:
    """One output record (a predictions.jsonl line or a BigQuery row) -> RawResult; None without a key."""
    if record is None or record.get("key") is None:
        return None
    return decode_answer(str(record["key"]), record)


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
