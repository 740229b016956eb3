"""Gemini on Vertex AI batch prediction: each chunk staged in Cloud Storage (or a BigQuery table),
one ``batchPredictionJob`` per chunk, answers read back from Cloud Storage or BigQuery.

Client
    google-genai's async client (``genai.Client(vertexai=True).aio.batches``): native asyncio
    (aiohttp), so the triggerer polls without threads; it refreshes credentials in a thread. Its
    own retries are off (a blind retry of a create could pay twice); the backend retries reads
    itself and guards creates with a look-up by tag (:mod:`airflow_llm_batch.backends.guarded_create`).
    Cloud Storage and BigQuery go through google-cloud-storage / google-cloud-bigquery (the clients
    of :mod:`airflow_llm_batch.google`), on worker threads, streamed: staging, downloads and pages
    never hold a chunk in memory.

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

Where data goes (:mod:`airflow_llm_batch.backends.vertex_staging`, from the connection)
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
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar, cast

import aiohttp
import httpx
from google.genai import Client, errors, types

from airflow_llm_batch.backends import realtime_google
from airflow_llm_batch.backends.generate_content import JOB_STATES, decode_answer, status_error
from airflow_llm_batch.backends.guarded_create import SERVER_ERRORS, CreateAnswers, CreateGuard, retry_reads
from airflow_llm_batch.backends.identity import ClientEndpoint
from airflow_llm_batch.backends.vertex_request import generate_content_request
from airflow_llm_batch.backends.vertex_staging import GoogleClients, VertexStaging, output_records, stage_chunk
from airflow_llm_batch.exceptions import InvalidInputError, ProviderError
from airflow_llm_batch.pipeline import types as neutral
from airflow_llm_batch.pipeline.backend import NO_HINTS, FindHints, OpenChunk, answer_blocks

log = logging.getLogger(__name__)

MIB = 1024 * 1024
#: tries of one job create after transient failures, each preceded by a look-up of the tag
CREATE_ATTEMPTS = 6
READ_ATTEMPTS = 4
#: after an unclear create failure, jobs created this long before the call are candidates (clock skew)
CREATE_LOOKBACK_SECONDS = 60.0
_LABEL_CHARS = re.compile(r"[^a-z0-9_-]")
_LABELS = ("llm_batch_tag", "dag_id", "task_id", "chunk", "map_index")


def _describe(exc: BaseException) -> str:
    error = cast(errors.APIError, exc)
    return f"({error.code} {error.status}): {error.message}"


#: 429 proves nothing was created; after a 5xx or a lost connection the job may exist. Reads
#: (polls, lists, cancels) are tried again after the same answers.
ANSWERS = CreateAnswers(
    service="Vertex AI", api_error=errors.APIError, status_of=lambda exc: cast(errors.APIError, exc).code,
    describe=_describe, refused_statuses=frozenset({429}), unclear_statuses=SERVER_ERRORS,
    unclear_errors=(aiohttp.ClientError, httpx.TransportError, asyncio.TimeoutError, ConnectionError),
    batch_word="batch prediction job",
)


class VertexBatchBackend:
    """Batch prediction jobs through google-genai (``vertexai=True``), data through GCS or BigQuery.

    Example::

        client = genai.Client(vertexai=True, project="my-project", location="us-central1")
        backend = VertexBatchBackend(client, staging=VertexStaging.parse("gs://my-bucket/llm-batch"),
                                     clients=GoogleClients(google_settings(), "my-project"))
    """

    name: ClassVar[str] = "vertex"
    limits: ClassVar[neutral.BatchLimits] = neutral.BatchLimits(
        # 200,000 requests per job; file (1 GB) and request sizes are unenforced (unconfirmed): kept under
        max_requests=200_000, max_bytes=1024 * MIB, max_request_bytes=20 * MIB,
        results_retention_seconds=29 * 86_400.0)  # results stay in the task's own output location
    endpoint_identity = ClientEndpoint()
    #: a provider batch API exists (``mode="auto"`` falls back to real time when it does not)
    has_batch_api: ClassVar[bool] = True

    def __init__(self, client: Client, *, staging: VertexStaging, clients: GoogleClients,
                 create_retry_delays: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0),
                 read_retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0)) -> None:
        self.client = client
        self.staging = staging
        self.clients = clients
        self.read_retry_delays = read_retry_delays[: READ_ATTEMPTS - 1]
        self.guard = CreateGuard(ANSWERS, "Vertex AI", create_retry_delays[: CREATE_ATTEMPTS - 1],
                                 lookup_delays=self.read_retry_delays)

    # -- building ----------------------------------------------------------------------------------
    def custom_id_for(self, key: str) -> str:
        return key  # the key is a passthrough field: any string comes back unchanged

    def request_line(self, request: neutral.LLMRequest) -> dict[str, object]:
        return {"key": request.custom_id, "model": request.model, "request": self.generate_content_request(request)}

    def generate_content_request(self, request: neutral.LLMRequest) -> dict[str, Any]:
        """The ``GenerateContentRequest`` of one row."""
        return generate_content_request(request)

    # -- submitting --------------------------------------------------------------------------------
    async def submit(self, open_chunk: OpenChunk, count: int, tags: dict[str, str]) -> str:
        tag = tags.get("llm_batch_tag") or "chunk"
        model = await asyncio.to_thread(_chunk_model, open_chunk)
        source = await stage_chunk(self.staging, self.clients, open_chunk, tag)
        name = await self._create_once(model, source, self.staging.output_for(tag), tags)
        log.info("Created Vertex batch prediction job %s: %d requests from %s (intent %s)", name, count, source, tag)
        return name

    async def _create_once(self, model: str, source: str, destination: str, tags: dict[str, str]) -> str:
        """Create the job once; after an unclear failure look for its tag before trying again."""
        tag, started = tags.get("llm_batch_tag", ""), time.time()
        config = types.CreateBatchJobConfig(
            display_name=_display_name(tag, tags), dest=destination,
            http_options=types.HttpOptions(extra_body={"labels": job_labels(tags)}))

        async def make() -> str:
            return str((await self.client.aio.batches.create(model=model, src=source, config=config)).name)

        return await self.guard.create(make, lambda: self.find(tag, started - CREATE_LOOKBACK_SECONDS))

    async def find(self, tag: str, created_after: float, hints: FindHints = NO_HINTS) -> list[str]:
        """Jobs labelled and named with ``tag`` (exact: only ``hints.exclude`` is used)."""
        since = dt.datetime.fromtimestamp(max(0.0, created_after), dt.timezone.utc)
        expression = (f'labels.llm_batch_tag="{_label_value(tag)}" AND '
                      f'create_time>="{since.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}"')
        found: list[str] = []
        pager = await self.client.aio.batches.list(config=types.ListBatchJobsConfig(filter=expression, page_size=100))
        async for job in pager:
            if job.create_time is not None and job.create_time.timestamp() < created_after:
                continue
            if (job.display_name or "").split(" ", 1)[0] == tag and job.name and job.name not in hints.exclude:
                found.append(job.name)
        log.info("Intent %s: %d job(s) carry the tag: %s", tag, len(found), found)
        return found

    # -- polling and reading -----------------------------------------------------------------------
    async def progress(self, batch_id: str) -> neutral.BatchProgress:
        try:
            job = await self.client.aio.batches.get(name=batch_id)
        except errors.APIError as exc:  # the trigger stops at once on a 4xx that polling cannot fix
            raise _provider_error(f"polling job {batch_id} failed", exc) from exc
        status = _state_name(job)
        stats = job.completion_stats or types.CompletionStats()
        succeeded, failed = int(stats.successful_count or 0), int(stats.failed_count or 0)
        errors_: tuple[dict[str, Any], ...] = ()
        if status == "JOB_STATE_FAILED" and job.error is not None:
            code, message = status_error({"code": job.error.code, "message": job.error.message})
            errors_ = ({"code": code, "message": message},)
        return neutral.BatchProgress(
            batch_id=batch_id, state=JOB_STATES.get(status, neutral.BatchState.RUNNING),
            provider_status=status.removeprefix("JOB_STATE_").lower(),
            total=succeeded + failed + max(0, int(stats.incomplete_count or 0)), completed=succeeded,
            failed=failed, errors=errors_)

    def result_blocks(self, batch_id: str) -> AsyncIterator[list[neutral.RawResult]]:
        return answer_blocks(self.results(batch_id))

    async def results(self, batch_id: str) -> AsyncIterator[neutral.RawResult]:
        try:
            job = await self._reading(lambda: self.client.aio.batches.get(name=batch_id))
        except errors.APIError as exc:
            raise _provider_error(f"reading job {batch_id} failed", exc) from exc
        records = output_records(self.clients, job)
        if records is None:
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

    # -- the rest ----------------------------------------------------------------------------------
    async def cancel(self, batch_id: str) -> None:
        try:
            await self._reading(lambda: self.client.aio.batches.cancel(name=batch_id))
        except errors.APIError as exc:  # already ended, or unknown: nothing left to stop
            log.info("Cancel of job %s not applied (%s %s)", batch_id, exc.code, exc.status)

    async def aclose(self) -> None:
        await self.client.aio.aclose()
        await asyncio.to_thread(self.clients.close)

    async def realtime_send(self, request_line: dict[str, Any]) -> neutral.RawResult:
        """One request line sent on the provider's ordinary endpoint, decoded as batch results are
        (:mod:`airflow_llm_batch.backends.realtime_google`); CallFailed when no answer came."""
        return await realtime_google.send(self.client, request_line)

    async def _reading(self, call: Any) -> Any:
        """An idempotent call, tried again after transient failures."""
        return await retry_reads(call, ANSWERS, self.read_retry_delays)


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
    return ProviderError(f"{action} {_describe(exc)}", status_code=exc.code)


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


def decode_prediction(record: Mapping[str, Any] | None) -> neutral.RawResult | None:
    """One output record (a predictions.jsonl line or a BigQuery row) -> RawResult; None without a key."""
    if record is None or record.get("key") is None:
        return None
    return decode_answer(str(record["key"]), record)
