"""OpenAI Batch API (and any service speaking it): JSONL file upload, then one batch per chunk."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any, ClassVar, cast

import openai
from openai import AsyncAzureOpenAI, AsyncOpenAI

from airflow_llm_batch.backends.download_errors import download_failed
from airflow_llm_batch.backends.guarded_create import CreateAnswers, CreateGuard
from airflow_llm_batch.backends.identity import ClientEndpoint
from airflow_llm_batch.backends.json_lines import LineReader, answer_blocks_of, json_object, line_object
from airflow_llm_batch.backends.json_schema import strict_object_schema
from airflow_llm_batch.backends.openai_lines import decode_common_line
from airflow_llm_batch.backends.openai_params import body_params
from airflow_llm_batch.backends.raw_http import stainless_target
from airflow_llm_batch.backends.raw_realtime_send import RealtimeTransport
from airflow_llm_batch.exceptions import ProviderError
from airflow_llm_batch.pipeline.backend import NO_HINTS, FindHints, OpenChunk, each_answer
from airflow_llm_batch.pipeline.types import (
    BatchLimits,
    BatchProgress,
    BatchState,
    Endpoint,
    FinishReason,
    LLMRequest,
    RawResult,
    Usage,
    raw_result_of,
    unreadable_answer,
)

log = logging.getLogger(__name__)

URLS = {
    Endpoint.CHAT: "/v1/chat/completions",
    Endpoint.RESPONSES: "/v1/responses",
    Endpoint.EMBEDDINGS: "/v1/embeddings",
}

STATES = {
    "validating": BatchState.PENDING,
    "in_progress": BatchState.RUNNING,
    "finalizing": BatchState.RUNNING,
    "completed": BatchState.COMPLETED,
    "failed": BatchState.FAILED,
    "expired": BatchState.EXPIRED,
    "cancelling": BatchState.CANCELLING,
    "cancelled": BatchState.CANCELLED,
}

#: a row's HTTP error code -> the neutral one: Azure OpenAI refuses a prompt its content filter
#: blocks with a 400 whose code is ``content_filter`` (the answer-withheld case is a finish reason)
_HTTP_ERROR_CODES = {"content_filter": "prompt_blocked"}
_MAX_METADATA_PAIRS, _MAX_METADATA_KEY, _MAX_METADATA_VALUE = 16, 64, 512
#: waits before each new try of a create (and of the look-up of its tag) after a transient failure
CREATE_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
#: after an unclear create failure, batches created this long before the call are candidates (clock skew)
CREATE_LOOKBACK_SECONDS = 60.0
#: 429 proves nothing was created; after a 5xx or a lost connection the batch may exist
CREATE_ANSWERS = CreateAnswers(
    service="OpenAI", api_error=openai.APIStatusError,
    status_of=lambda exc: cast(openai.APIStatusError, exc).status_code,
    describe=lambda exc: f"({cast(openai.APIStatusError, exc).status_code}): {_api_message(exc)}",
    unclear_errors=(openai.APIConnectionError,),  # includes timeouts
)


class OpenAIBatchBackend:
    """Batches through ``/v1/files`` and ``/v1/batches`` with an ``AsyncOpenAI`` client.

    Example: ``OpenAIBatchBackend(AsyncOpenAI(base_url="http://127.0.0.1:8787/v1", api_key="x"))``
    """

    name: ClassVar[str] = "openai"
    #: the ``url`` of each input line and the batch ``endpoint``
    urls: ClassVar[dict[Endpoint, str]] = URLS
    limits: ClassVar[BatchLimits] = BatchLimits(
        max_requests=50_000, max_bytes=200 * 1024 * 1024, max_request_bytes=200 * 1024 * 1024,
        results_retention_seconds=29 * 86_400.0,  # output files: 30 days after completion (24 h at most)
    )
    endpoint_identity = ClientEndpoint()
    #: a provider batch API exists (``mode="auto"`` falls back to real time when it does not)
    has_batch_api: ClassVar[bool] = True

    def __init__(self, client: AsyncOpenAI | AsyncAzureOpenAI, *,
                 create_retry_delays: tuple[float, ...] = CREATE_RETRY_DELAYS,
                 batch_options: Mapping[str, Any] | None = None) -> None:
        self.client = client
        self.batch_options = dict(batch_options or {})  # checked by operators/batch_options.py
        self.guard = CreateGuard(CREATE_ANSWERS, f"the OpenAI endpoint {client.base_url}", create_retry_delays,
                                 lookup_delays=create_retry_delays)
        self._strict: tuple[dict[str, Any], dict[str, Any]] | None = None
        self.realtime = RealtimeTransport(lambda: stainless_target(client))  # raw real-time sends (or the SDK's)

    # -- building ----------------------------------------------------------------------------------
    def custom_id_for(self, key: str) -> str:
        return key

    def request_line(self, request: LLMRequest) -> dict[str, object]:
        return {"custom_id": request.custom_id, "method": "POST", "url": self.urls[request.endpoint],
                "body": self.request_body(request)}

    def request_body(self, request: LLMRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": request.model}
        if request.endpoint == Endpoint.EMBEDDINGS:
            body["input"] = request.prompt
        elif request.endpoint == Endpoint.RESPONSES:
            body["input"] = request.prompt
            if request.system_prompt:
                body["instructions"] = request.system_prompt
            if request.response_schema is not None:
                body["text"] = {"format": {"type": "json_schema", "name": request.schema_name,
                                           "schema": self._strict_schema(request.response_schema),
                                           "strict": True}}
            elif request.json_output:
                body["text"] = {"format": {"type": "json_object"}}
        else:
            messages = [{"role": "user", "content": request.prompt}]
            if request.system_prompt:
                messages.insert(0, {"role": "system", "content": request.system_prompt})
            body["messages"] = messages
            if request.response_schema is not None:
                body["response_format"] = {"type": "json_schema", "json_schema": {
                    "name": request.schema_name, "schema": self._strict_schema(request.response_schema),
                    "strict": True}}
            elif request.json_output:
                body["response_format"] = {"type": "json_object"}
        return {**body, **body_params(request.endpoint, request.model, request.params)}

    def _strict_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Every row of a run shares one schema object: rewrite it once, not per row (30% of prepare)."""
        if self._strict is None or self._strict[0] is not schema:
            self._strict = (schema, strict_object_schema(schema))
        return self._strict[1]

    # -- talking to the service --------------------------------------------------------------------
    async def submit(self, open_chunk: OpenChunk, count: int, tags: dict[str, str]) -> str:
        endpoint = _endpoint_of_chunk(open_chunk)
        try:
            with open_chunk() as fh:  # a repeated upload costs nothing: the SDK may retry it
                upload = await self.client.files.create(
                    file=(f"{tags.get('llm_batch_tag', 'chunk')}.jsonl", fh, "application/jsonl"),
                    purpose="batch",
                )
        except openai.APIStatusError as exc:
            raise ProviderError(f"OpenAI refused the upload ({exc.status_code}): {_api_message(exc)}") from exc
        except openai.APIConnectionError as exc:
            raise ProviderError(f"cannot reach the OpenAI endpoint {self.client.base_url}: {exc}") from exc
        return await self._create_once(upload.id, endpoint, tags)

    async def _create_once(self, file_id: str, endpoint: str, tags: dict[str, str]) -> str:
        """Create the batch once; after an unclear failure look for its tag before trying again."""
        tag, started = tags.get("llm_batch_tag", ""), time.time()
        client = self.client.with_options(max_retries=0)

        async def make() -> str:
            expiry = self.batch_options.get("output_expires_after")
            batch = await client.batches.create(
                input_file_id=file_id, endpoint=endpoint, completion_window="24h",  # type: ignore[arg-type]
                metadata=_metadata({**self.batch_options.get("metadata", {}), **tags}),
                **({"output_expires_after": expiry} if expiry else {}))
            return batch.id

        return await self.guard.create(make, lambda: self.find(tag, started - CREATE_LOOKBACK_SECONDS))

    async def find(self, tag: str, created_after: float, hints: FindHints = NO_HINTS) -> list[str]:
        """Batches whose metadata carries ``tag`` (exact: only ``hints.exclude`` is used)."""
        found: list[str] = []
        async for batch in self.client.batches.list(limit=100):
            if batch.created_at < created_after:
                break
            if (batch.metadata or {}).get("llm_batch_tag") == tag and batch.id not in hints.exclude:
                found.append(batch.id)
        return found

    async def progress(self, batch_id: str) -> BatchProgress:
        return batch_progress((await self.client.batches.retrieve(batch_id)).to_dict())

    def results(self, batch_id: str) -> AsyncGenerator[RawResult, None]:
        return each_answer(self.result_blocks(batch_id))

    async def result_blocks(self, batch_id: str) -> AsyncGenerator[list[RawResult], None]:
        """The answers of the batch's output file, then of its error file, each read from its bytes as it
        downloads (:func:`read_output_line`'s way, a list per downloaded piece)."""
        batch = await self.client.batches.retrieve(batch_id)
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            reader = LineReader(decode_common_line, read_other_line, output_object)
            where = f"file {file_id} of batch {batch_id}"
            async with _download(self.client, batch_id, file_id) as response:
                async for answers in answer_blocks_of(response.iter_bytes(), reader, where):
                    yield answers

    async def cancel(self, batch_id: str) -> None:
        try:
            await self.client.batches.cancel(batch_id)
        except openai.APIStatusError as exc:  # already ended, or unknown: nothing left to stop
            log.info("Cancel of batch %s not applied (%s)", batch_id, exc.status_code)

    async def aclose(self) -> None:
        await self.realtime.aclose()
        await self.client.close()

    async def realtime_send(self, request_line: dict[str, Any]) -> RawResult:
        """One request line sent on the provider's ordinary endpoint, decoded as batch results are
        (:mod:`airflow_llm_batch.backends.realtime_openai`); CallFailed when no answer came."""
        from airflow_llm_batch.backends import realtime_openai  # it imports this module's decoder

        return await realtime_openai.send(self.client, request_line, self.realtime.sender())


def batch_progress(batch: Mapping[str, Any]) -> BatchProgress:
    """A batch object as the API sends it (JSON) -> BatchProgress: the one status decoder of the SDK
    poll and the triggerer's raw poll (triggers/raw_poll.py)."""
    counts = batch.get("request_counts") or {}
    errors = tuple({"code": e.get("code"), "message": e.get("message"), "line": e.get("line"), "param": e.get("param")}
                   for e in ((batch.get("errors") or {}).get("data") or []))
    status = str(batch.get("status"))
    return BatchProgress(batch_id=str(batch.get("id")), state=STATES.get(status, BatchState.RUNNING),
                         provider_status=status, total=int(counts.get("total") or 0),
                         completed=int(counts.get("completed") or 0), failed=int(counts.get("failed") or 0),
                         errors=errors)


def read_output_line(line: bytes) -> RawResult | None:
    """The answer of one output or error file line, as ``results()`` yields it; ``None`` for a line
    without one (blank, ``{}``, or broken: :func:`output_object` tells which). The common line is read
    straight from its bytes (:func:`~airflow_llm_batch.backends.openai_lines.decode_common_line`), any
    other by :func:`read_other_line`, which gives the same answer."""
    answer = decode_common_line(line)
    return answer if answer is not None else read_other_line(line)


def read_other_line(line: bytes) -> RawResult | None:
    """Any output line, read with :func:`output_object` and :func:`decode_output_line` (None: blank or broken)."""
    document = output_object(line)
    return decode_output_line(document) if document else None


def output_object(line: bytes) -> dict[str, Any] | None:
    """The JSON object of one output or error file line ({} for a blank line, None for a broken one).
    Its numbers are read only from status codes and token counts, so integers need not be exact."""
    return line_object(line, exact_integers=False)


def decode_output_line(line: dict[str, Any]) -> RawResult:
    """One line of an output or error file -> RawResult (success, HTTP error, or batch-level error).

    Most lines are a chat completion that succeeded: status 200, one choice whose message has a string
    content and no refusal, finish reason ``stop``, integer token counts with the cached count in
    ``prompt_tokens_details``. Such a line is read here with subscripts (~half the cost of the general
    decoder); any other line, or one missing a field, goes to :func:`decode_any_line`, which gives the
    same answer for the common line too (tests/backends/test_openai_decode_fast.py)."""
    try:
        body, choices = line["response"]["body"], line["response"]["body"]["choices"]
        (choice,) = choices
        message, usage = choice["message"], body["usage"]
        custom_id, text, model = line["custom_id"], message["content"], body.get("model")
        tokens = tokens_in, tokens_out, cached = (usage["prompt_tokens"], usage["completion_tokens"],
                                                  usage["prompt_tokens_details"]["cached_tokens"])
        common = (line["error"] is None and line["response"]["status_code"] == 200 and type(text) is str
                  and choice["finish_reason"] == "stop" and not message.get("refusal") and type(custom_id) is str
                  and body["object"] == "chat.completion" and type(choices) is list and type(tokens_in) is int
                  and type(tokens_out) is int and type(cached) is int)
    except (KeyError, TypeError, ValueError):
        common = False
    if common:
        return raw_result_of((custom_id, True, text, None, model, tokens, None, None, FinishReason.STOP))
    try:
        return decode_any_line(line)
    except (AttributeError, TypeError, ValueError, IndexError) as exc:  # a JSON object of another shape
        return unreadable_answer(line.get("custom_id"), exc)


def decode_any_line(line: dict[str, Any]) -> RawResult:
    """The general decoder of :func:`decode_output_line`: any line, the common one included."""
    custom_id = str(line.get("custom_id"))
    error = line.get("error")
    response = line.get("response") or {}
    body = response.get("body") or {}
    if error:
        return RawResult(custom_id, ok=False, error_code=str(error.get("code") or "error"),
                         error_message=str(error.get("message") or ""))
    status = int(response.get("status_code") or 0)
    if status >= 400 or not body:
        err = body.get("error") or {}
        code = str(err.get("code") or err.get("type") or status)
        return RawResult(custom_id, ok=False, error_code=_HTTP_ERROR_CODES.get(code, code),
                         error_message=str(err.get("message") or f"HTTP {status}"))
    usage = body.get("usage") or {}
    model = body.get("model")
    if body.get("object") == "list" and body.get("data"):  # embeddings
        return RawResult(custom_id, ok=True, embedding=body["data"][0].get("embedding"), model=model,
                         usage=Usage(int(usage.get("prompt_tokens", 0)), 0))
    if "choices" in body:  # chat completions
        choice = (body.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
        use = (int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)), int(cached))
        if message.get("refusal"):
            return RawResult(custom_id, ok=False, model=model, usage=use, error_code="refusal",
                             error_message=str(message["refusal"]))
        return _answer(custom_id, message.get("content"), model, use, choice.get("finish_reason"))
    # responses API
    cached = (usage.get("input_tokens_details") or {}).get("cached_tokens") or 0
    use = (int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0)), int(cached))
    texts = [part.get("text", "") for item in body.get("output") or [] if item.get("type") == "message"
             for part in item.get("content") or [] if part.get("type") == "output_text"]
    finish = (body.get("incomplete_details") or {}).get("reason") if body.get("status") == "incomplete" else None
    return _answer(custom_id, "".join(texts), model, use, finish)


def _answer(custom_id: str, text: str | None, model: str | None, usage: tuple[int, int, int],
            word: str | None) -> RawResult:
    """A generated answer; one the content filter withheld or cut fails as ``content_filter``."""
    finish = FinishReason.parse(word)
    if finish is FinishReason.CONTENT_FILTER:
        return RawResult(custom_id, ok=False, text=text or None, model=model, usage=usage, error_code="content_filter",
                         error_message="the content filter withheld the answer", finish_reason=finish)
    return RawResult(custom_id, True, text, None, model, usage, None, None, finish)  # positional: once per row


def _endpoint_of_chunk(open_chunk: OpenChunk) -> str:
    with open_chunk() as fh:
        first = json_object(fh.readline()) or {}
    return str(first["url"])


def _metadata(tags: dict[str, str]) -> dict[str, str]:
    items = sorted(tags.items(), key=lambda kv: kv[0] != "llm_batch_tag")[:_MAX_METADATA_PAIRS]
    return {k[:_MAX_METADATA_KEY]: v[:_MAX_METADATA_VALUE] for k, v in items}


def _api_message(exc: BaseException) -> str:
    error = cast(openai.APIStatusError, exc)
    body = error.body if isinstance(error.body, dict) else {}
    return str(body.get("message") or (body.get("error") or {}).get("message") or error.message)


@contextlib.asynccontextmanager
async def _download(client: AsyncOpenAI | AsyncAzureOpenAI, batch_id: str, file_id: str) -> AsyncIterator[Any]:
    """Open a results file; a failure past the client's own retries says what it means and what to do."""
    try:
        async with client.files.with_streaming_response.content(file_id) as response:
            yield response
    except (openai.APIStatusError, openai.APIConnectionError) as exc:
        raise download_failed(f"results file {file_id} of batch {batch_id}", client.max_retries, exc) from exc
