"""Gemini Developer API batch mode (``models/*:batchGenerateContent``) through ``google-genai``.

Request translation: :mod:`airflow_llm_batch.backends.gemini_request`. Decoding answers and errors:
:mod:`airflow_llm_batch.backends.generate_content` (shared with the Vertex backend).

Inline or file
    A chunk whose create body would stay under ``inline_max_bytes`` (the documented 20 MB inline
    limit, measured as google-genai serializes the body) is sent inline, each request with
    ``metadata: {"key": custom_id}``; a larger one is uploaded with the Files API (resumable) as
    JSONL lines ``{"key", "request"}`` and created from the file (up to 2 GB).

Joining answers: by key, never by position
    Inline responses have been reported out of order (python-genai#1909) and without their
    ``metadata`` (python-genai#2008). Inline responses are joined on ``metadata.key``, output file
    lines on ``key``. A response without a key is never guessed: it is skipped (its row ends as
    ``missing_result``, which the engine retries) and this backend then sends its next chunks as
    files, whose lines carry the key.

Reading batches
    google-genai's ``BatchJob`` drops ``batchStats`` and the operation's ``error``. Progress and
    results therefore read the batch as the service sends it, through ``client.aio.operations.get``
    (public; it accepts any object with ``name`` and ``from_api_response``). A batch that SUCCEEDED
    may hold only failed rows (python-genai#2693): per-row ``error`` objects are always read.

Creating a batch
    The create call runs with google-genai's retries off (a blind retry could create a second
    batch). A 429 or a failed connect proves nothing was created: it is tried again after a
    delay. After a 5xx, a timeout or a connection lost mid-call the batch may exist: the backend
    first looks for a batch whose ``displayName`` is the chunk's ``llm_batch_tag``, uses it if
    there is one, and only then tries again.

Limits
    ``max_bytes`` is the documented 2 GB input file limit. The Developer API documents no cap on
    the number of requests per batch (only bytes, 100 concurrent batches, and enqueued tokens per
    model); ``max_requests`` = 200,000 is Vertex AI's documented per-job cap for Gemini batch
    prediction, used here as a conservative bound (unconfirmed for the Developer API).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from typing import IO, Any, ClassVar, cast

import aiohttp
import httpx
from google import genai
from google.genai import errors, types

from airflow_llm_batch.backends import realtime_google
from airflow_llm_batch.backends.count_tokens import gemini_count
from airflow_llm_batch.backends.gemini_request import inline_body_size, inlined_request, request_body
from airflow_llm_batch.backends.generate_content import JOB_STATES, decode_answer, int64, status_error
from airflow_llm_batch.backends.generate_content_lines import decode_common_line
from airflow_llm_batch.backends.guarded_create import CreateAnswers, CreateGuard
from airflow_llm_batch.backends.identity import ClientEndpoint
from airflow_llm_batch.backends.json_lines import json_object
from airflow_llm_batch.backends.raw_http import RawTarget, gemini_target
from airflow_llm_batch.backends.raw_realtime_send import RealtimeTransport
from airflow_llm_batch.exceptions import LLMBatchError, ProviderError
from airflow_llm_batch.pipeline.backend import NO_HINTS, FindHints, OpenChunk, answer_blocks
from airflow_llm_batch.pipeline.types import (
    BatchLimits,
    BatchProgress,
    BatchState,
    LLMRequest,
    RawResult,
)

log = logging.getLogger(__name__)

MIB = 1024 * 1024
INLINE_LIMIT_BYTES = 20 * MIB
"""The documented cap on a create call with inline requests."""
DEFAULT_INLINE_MAX_BYTES = INLINE_LIMIT_BYTES - 256 * 1024
"""Inline only below this estimated create body size: headroom for the envelope and rounding."""
JSONL_MIME_TYPE = "jsonl"

#: after an unclear create failure, batches created this long before the call are candidates (clock skew)
CREATE_LOOKBACK_SECONDS = 60.0
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientError, httpx.TransportError, asyncio.TimeoutError, TimeoutError, ConnectionError,
)
#: 429 or a failed connect (the request never reached the service) prove nothing was created; after
#: 408, a 5xx, a timeout or a connection lost mid-call the batch may exist
CREATE_ANSWERS = CreateAnswers(
    service="Gemini", api_error=errors.APIError, status_of=lambda exc: cast(errors.APIError, exc).code,
    describe=lambda exc: f"({_describe(cast(errors.APIError, exc))})",
    unclear_statuses=frozenset({408, 500, 502, 503, 504}),
    refused_errors=(aiohttp.ClientConnectorError, httpx.ConnectError), unclear_errors=_TRANSPORT_ERRORS,
)
_NO_RETRY = types.HttpOptions(retry_options=types.HttpRetryOptions(attempts=1))


class GeminiBatchBackend:
    """Batches through ``models/*:batchGenerateContent`` and the Files API with a ``genai.Client``
    (its async surface, ``client.aio``).

    Example::

        client = genai.Client(api_key="...", http_options=types.HttpOptions(base_url="http://127.0.0.1:8787"))
        backend = GeminiBatchBackend(client)

    :param inline_max_bytes: send a chunk inline when its estimated create body is at most this many
        bytes, else upload it as a file (0 always uploads)
    :param create_retry_delays: seconds to wait before each new try of a create that failed
        transiently (429, 5xx, timeout, lost connection)
    :param raw_target: where real-time sends go as plain HTTP (backends/raw_http.py ``gemini_target`` of the
        client's arguments; :meth:`from_client_kwargs` sets it); None keeps them on the SDK client
    """

    name: ClassVar[str] = "gemini"
    limits: ClassVar[BatchLimits] = BatchLimits(
        max_requests=200_000, max_bytes=2 * 1024 * MIB - MIB, max_request_bytes=INLINE_LIMIT_BYTES,
        results_retention_seconds=47 * 3_600.0)  # files (results too) are deleted after 48 h
    endpoint_identity = ClientEndpoint()
    #: a provider batch API exists (``mode="auto"`` falls back to real time when it does not)
    has_batch_api: ClassVar[bool] = True

    def __init__(self, client: genai.Client, *, inline_max_bytes: int = DEFAULT_INLINE_MAX_BYTES,
                 create_retry_delays: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0),
                 raw_target: RawTarget | None = None) -> None:
        self.client = client
        self.inline_max_bytes = inline_max_bytes
        self.guard = CreateGuard(CREATE_ANSWERS, "the Gemini endpoint", create_retry_delays)
        #: set once inline responses came back without their key: later chunks go as files
        self.inline_unjoinable = False
        #: raw real-time sends where the connection allows them (or the SDK's), errors read as Google's
        self.realtime = RealtimeTransport(lambda: raw_target, refuse=realtime_google.refused)

    @classmethod
    def from_client_kwargs(cls, kwargs: Mapping[str, Any], **options: Any) -> GeminiBatchBackend:
        """The backend of ``genai.Client(**kwargs)``, its real-time sends raw where ``kwargs`` allow it (an API
        key, not Vertex AI): google-genai keeps its own copy of them private."""
        return cls(genai.Client(**kwargs), raw_target=gemini_target(kwargs), **options)

    # -- building ----------------------------------------------------------------------------------
    def custom_id_for(self, key: str) -> str:
        return key

    def request_line(self, request: LLMRequest) -> dict[str, object]:
        return {"key": request.custom_id, "request": self.request_body(request)}

    def request_body(self, request: LLMRequest) -> dict[str, Any]:
        """The ``GenerateContentRequest`` (wire JSON) of one request."""
        return request_body(request)

    # -- submitting --------------------------------------------------------------------------------
    async def submit(self, open_chunk: OpenChunk, count: int, tags: dict[str, str]) -> str:
        tag = tags.get("llm_batch_tag", "")
        lines = None if self.inline_unjoinable else _read_if_small(open_chunk, self.inline_max_bytes)
        if lines is not None and len(lines) != count:
            raise LLMBatchError(f"chunk {tags.get('chunk')} holds {len(lines)} requests, expected {count}; "
                                f"nothing was submitted")
        src: list[dict[str, Any]] | str
        if lines is not None and inline_body_size(lines) <= self.inline_max_bytes:
            model, src, how = str(lines[0]["request"]["model"]), [inlined_request(line) for line in lines], "inline"
        else:
            model, src, how = _model_of_chunk(open_chunk), await self._upload(open_chunk, tag), "file"
        name = await self._create(model, src, tag)
        log.info("Created Gemini batch %s with %d requests (%s; intent %s)", name, count, how, tag)
        return name

    async def _upload(self, open_chunk: OpenChunk, tag: str) -> str:
        """Upload the chunk with the Files API (resumable). A repeated upload costs nothing."""
        config = types.UploadFileConfig(display_name=tag or None, mime_type=JSONL_MIME_TYPE)
        try:
            with open_chunk() as fh, _as_io_base(fh) as readable:
                uploaded = await self.client.aio.files.upload(file=readable, config=config)
        except errors.APIError as exc:
            raise ProviderError(f"Gemini refused the upload of the chunk file ({_describe(exc)}); nothing was "
                                f"submitted") from exc
        except _TRANSPORT_ERRORS as exc:
            raise ProviderError(f"cannot reach the Gemini endpoint to upload the chunk file "
                                f"({type(exc).__name__}); nothing was submitted") from exc
        if not uploaded.name:
            raise ProviderError("the Gemini Files API returned no file name for the upload; nothing was submitted")
        log.info("Uploaded chunk file %s (%s bytes) for intent %s", uploaded.name, uploaded.size_bytes, tag)
        return uploaded.name

    async def _create(self, model: str, src: Any, tag: str) -> str:
        """Create the batch once (google-genai's retries off); see the module docstring."""
        config = types.CreateBatchJobConfig(display_name=tag, http_options=_NO_RETRY)
        started = time.time()

        async def make() -> str:
            job = await self.client.aio.batches.create(model=model, src=src, config=config)
            if not job.name:
                raise ProviderError("Gemini created a batch but returned no name; a retry of the task "
                                    "re-attaches to it by its tag")
            return job.name

        return await self.guard.create(make, lambda: self.find(tag, started - CREATE_LOOKBACK_SECONDS))

    async def find(self, tag: str, created_after: float, hints: FindHints = NO_HINTS) -> list[str]:
        """Batches whose ``displayName`` is ``tag`` (exact: only ``hints.exclude`` is used), created
        after ``created_after``. The list order is not documented, so every page is read."""
        found: list[str] = []
        pager = await self.client.aio.batches.list(config=types.ListBatchJobsConfig(page_size=100))
        async for job in pager:
            created = job.create_time.timestamp() if job.create_time else None
            if (job.name and job.display_name == tag and job.name not in hints.exclude
                    and (created is None or created >= created_after)):
                found.append(job.name)
        log.info("Intent %s: %d batch(es) carry its tag: %s", tag, len(found), found)
        return found

    # -- watching ----------------------------------------------------------------------------------
    async def progress(self, batch_id: str) -> BatchProgress:
        return batch_progress(batch_id, await self._document(batch_id))

    def result_blocks(self, batch_id: str) -> AsyncIterator[list[RawResult]]:
        return answer_blocks(self.results(batch_id))

    async def results(self, batch_id: str) -> AsyncGenerator[RawResult, None]:
        output = output_of(await self._document(batch_id))
        unjoinable = 0
        for item in _inline_items(output):
            metadata = item.get("metadata") if isinstance(item, dict) else None
            key = metadata.get("key") if isinstance(metadata, dict) else None
            if key is None:
                unjoinable += 1
                continue
            yield decode_answer(str(key), item)
        if unjoinable:
            self.inline_unjoinable = True
            log.warning("Batch %s: %d inline response(s) came back without their metadata key "
                        "(python-genai#2008); they cannot be joined and their rows will be sent again as a "
                        "file", batch_id, unjoinable)
        responses_file = output.get("responsesFile")
        if isinstance(responses_file, str) and responses_file:
            async for answer in self._file_answers(batch_id, responses_file):
                yield answer

    async def _file_answers(self, batch_id: str, file_name: str) -> AsyncGenerator[RawResult, None]:
        """Stream the responses file: downloaded to a temporary file, read line by line."""
        folder = tempfile.mkdtemp(prefix="llm-batch-gemini-")
        path = os.path.join(folder, "responses.jsonl")
        broken = keyless = 0
        try:
            await self.client.aio.files.download(file=file_name, destination=path)
            with open(path, "rb") as fh:  # noqa: ASYNC230  # a local temporary file, read on a worker
                for line in filter(bytes.strip, fh):
                    answer = decode_common_line(line)  # most lines; any other is read the general way
                    if answer is not None:
                        yield answer
                        continue
                    document = json_object(line)
                    if document is None:
                        broken += 1  # its row gets no answer: it ends as missing_result (retryable)
                    elif document.get("key") is None:
                        keyless += 1
                    else:
                        yield decode_answer(str(document["key"]), document)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if broken or keyless:
            log.warning("Skipped %d unreadable and %d keyless line(s) in %s of batch %s", broken, keyless,
                        file_name, batch_id)

    async def _document(self, batch_id: str) -> dict[str, Any]:
        """The batch (a long-running operation) as the service sends it."""
        check_batch_name(batch_id)
        try:
            found = await self.client.aio.operations.get(
                cast(Any, _RawOperation(batch_id)),  # any object with name + from_api_response
            )
        except errors.APIError as exc:
            raise _status_error(exc, f"cannot read batch {batch_id}") from exc
        return cast(_RawOperation, found).document

    async def cancel(self, batch_id: str) -> None:
        try:
            await self.client.aio.batches.cancel(name=batch_id)
        except errors.APIError as exc:  # already ended, or unknown: nothing left to stop
            log.info("Cancel of batch %s not applied (%s)", batch_id, exc.code)

    async def aclose(self) -> None:
        await self.realtime.aclose()
        await self.client.aio.aclose()
        self.client.close()

    async def realtime_send(self, request_line: dict[str, Any]) -> RawResult:
        """One request line sent on the provider's ordinary endpoint, decoded as batch results are
        (:mod:`airflow_llm_batch.backends.realtime_google`); CallFailed when no answer came."""
        return await realtime_google.send(self.client, request_line, self.realtime.sender())

    async def count_tokens(self, request_line: dict[str, Any]) -> int:
        """The line's prompt tokens from ``models.countTokens`` (free; ``estimate="api"``)."""
        return await gemini_count(self.client, request_line)


class _RawOperation:
    """What ``client.aio.operations.get`` needs (``name``, ``from_api_response``), keeping the JSON whole."""

    def __init__(self, name: str, document: dict[str, Any] | None = None) -> None:
        self.name = name
        self.document = document or {}

    @classmethod
    def from_api_response(cls, api_response: Any, is_vertex_ai: bool = False) -> _RawOperation:
        document = api_response if isinstance(api_response, dict) else {}
        return cls(str(document.get("name", "")), document)


def _read_if_small(open_chunk: OpenChunk, max_bytes: int) -> list[dict[str, Any]] | None:
    """The chunk's lines, or None as soon as its bytes pass ``max_bytes`` (it will go as a file)."""
    lines: list[dict[str, Any]] = []
    size = 0
    with open_chunk() as fh:
        for raw in fh:
            size += len(raw)
            if size > max_bytes:
                return None
            if raw.strip():
                lines.append(json.loads(raw))
    return lines


def _model_of_chunk(open_chunk: OpenChunk) -> str:
    with open_chunk() as fh:
        first = fh.readline()
    return str(json.loads(first)["request"]["model"])


@contextlib.contextmanager
def _as_io_base(handle: IO[bytes]) -> Iterator[io.IOBase]:
    """The handle itself when google-genai can stream it (an ``io.IOBase`` in binary mode), else a
    temporary copy on disk."""
    if isinstance(handle, io.IOBase) and "b" in str(getattr(handle, "mode", "b")):
        yield handle
        return
    with tempfile.TemporaryFile(prefix="llm-batch-gemini-") as copy:
        shutil.copyfileobj(handle, copy)
        copy.seek(0)
        yield cast(io.IOBase, copy)


# -- decoding helpers ------------------------------------------------------------------------------
def batch_progress(batch_id: str, document: dict[str, Any]) -> BatchProgress:
    """A batch operation as the service sends it (JSON) -> BatchProgress: the one status decoder of the
    SDK poll and the triggerer's raw poll (triggers/raw_poll.py)."""
    metadata = document.get("metadata") or {}
    status = str(metadata.get("state") or ("BATCH_STATE_SUCCEEDED" if document.get("done") else ""))
    state = JOB_STATES.get(status, BatchState.RUNNING)
    stats = metadata.get("batchStats") or {}
    total, completed, failed = (int64(stats.get(name)) for name in
                                ("requestCount", "successfulRequestCount", "failedRequestCount"))
    if not stats and state.is_terminal:
        items = _inline_items(output_of(document))
        total = len(items)
        failed = sum(1 for item in items if not isinstance(item, dict) or "response" not in item)
        completed = total - failed
    batch_errors: tuple[dict[str, Any], ...] = ()
    if state == BatchState.FAILED and isinstance(document.get("error"), dict):
        code, message = status_error(document["error"])
        batch_errors = ({"code": code, "message": message},)
    return BatchProgress(batch_id=batch_id, state=state, provider_status=status, total=total,
                         completed=completed, failed=failed, errors=batch_errors)


def check_batch_name(batch_id: str) -> str:
    """``batch_id`` when it names a Gemini batch (``batches/...``); a ProviderError otherwise."""
    if not batch_id.startswith("batches/"):
        raise ProviderError(f"{batch_id!r} is not a Gemini batch name (batches/...)")
    return batch_id


def output_of(document: dict[str, Any]) -> dict[str, Any]:
    """The batch output (``inlinedResponses`` or ``responsesFile``), wherever the operation carries it."""
    metadata = document.get("metadata") or {}
    response = document.get("response") or {}
    for candidate in (metadata.get("output"), response.get("output"), response):
        if isinstance(candidate, dict) and ("inlinedResponses" in candidate or "responsesFile" in candidate):
            return candidate
    return {}


def _inline_items(output: dict[str, Any]) -> list[Any]:
    inline = output.get("inlinedResponses")
    if isinstance(inline, dict):
        inline = inline.get("inlinedResponses")
    return inline if isinstance(inline, list) else []


def _describe(exc: errors.APIError) -> str:
    return f"{exc.code} {exc.status or ''}: {exc.message or ''}".strip()


def _status_error(exc: errors.APIError, action: str) -> ProviderError:
    """A ProviderError carrying the HTTP status as ``status_code`` (the trigger stops on 4xx it cannot fix)."""
    return ProviderError(f"{action} ({_describe(exc)})", status_code=exc.code)
