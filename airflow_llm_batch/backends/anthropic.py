"""Anthropic Message Batches: requests posted inline (no file upload), one batch per chunk.

Request translation (from the neutral `LLMRequest`)
    * ``system_prompt`` -> ``system``; the prompt -> one user message; ``max_tokens`` from the
      request params (1024 when absent: the API requires it).
    * A JSON schema (``response_format`` = pydantic model or schema dict) -> a forced tool whose
      ``input_schema`` is the schema; the answer is the tool call's input, re-serialised as JSON.
      The schema must describe an object (a tool input always is one).
    * JSON without a schema (``response_format="json"``) -> an instruction appended to the system
      prompt (Anthropic has no JSON mode); the parser still validates every answer.
    * ``cache_system_prompt: true`` in the request params (reserved, stripped before sending) puts
      the system prompt in a text block marked ``cache_control: {"type": "ephemeral"}``.
    * Every other param passes through (temperature, top_p, top_k, stop_sequences, metadata...);
      a few OpenAI-only names are refused with the Anthropic spelling, before anything is paid.

custom_ids must match ``^[a-zA-Z0-9_-]{1,64}$``: a key that does not is replaced by
``"k_" + sha256(key)[:62]``; the engine's key index maps it back, so results carry the user's key
(a clash with a literal key of that form is caught by the engine's duplicate-id check).

Creating a batch
    The chunk's lines are read and posted in one ``messages.batches.create`` call, with the SDK's
    own retries off (a blind retry could create a second batch), through the shared guarded create
    (:mod:`airflow_llm_batch.backends.guarded_create`, table :data:`CREATE_ANSWERS`). 429 and 529 prove nothing was
    created: the call is tried again after a delay. After another 5xx or a lost connection the
    batch may exist: the backend looks for a batch of the same size that was not among the newest
    ones listed just before the call, uses it if there is exactly one, tries again if there is none,
    and stops with ProviderError if there are several.

Re-attach without metadata
    An Anthropic batch carries no metadata and no name: the ``llm_batch_tag`` recorded with an
    intent cannot be read back from the batch. `AnthropicBatchBackend.find` therefore matches on
    what is observable (the :class:`~airflow_llm_batch.pipeline.backend.FindHints`) and remembers
    nothing between processes:

    1. list batches newest first (``after_id`` paging) down to ``created_after``;
    2. drop the ones in ``exclude`` (batch ids the run already recorded for its other chunks);
    3. with ``count``: keep batches holding exactly that many requests (request_counts sum);
    4. with ``first_custom_id``: a batch that has ended shows its custom_ids in its results, so
       keep it only if they hold that id; a batch still processing cannot be checked and stays.

    Every survivor is returned; the engine refuses to guess when there is more than one (never pay
    twice). Limits: called with only ``(tag, created_after)``, every batch created in the window is
    a candidate, so any other batch created by the same API key in the window (another task,
    another chunk of this run) makes the re-attach ambiguous, and a lone unrelated batch would be
    taken for ours; ``count`` and ``exclude`` make a false match unlikely, ``first_custom_id``
    settles it once batches end. Two runs over the same keys and the same count, created within
    the window and both still processing, cannot be told apart: that ends in ReattachError, never
    in a second payment.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import aclosing
from typing import Any, ClassVar, cast

import anthropic
from anthropic import AsyncAnthropic
from anthropic.types.messages import MessageBatch

from airflow_llm_batch.backends import realtime_anthropic
from airflow_llm_batch.backends.anthropic_lines import decode_common_line
from airflow_llm_batch.backends.anthropic_results import batch_progress, read_other_line, results_object, total
from airflow_llm_batch.backends.count_tokens import anthropic_count
from airflow_llm_batch.backends.download_errors import download_failed
from airflow_llm_batch.backends.guarded_create import CreateAnswers, CreateGuard
from airflow_llm_batch.backends.identity import ClientEndpoint
from airflow_llm_batch.backends.json_lines import LineReader, answer_blocks_of
from airflow_llm_batch.backends.raw_http import stainless_target
from airflow_llm_batch.backends.raw_realtime_send import RealtimeTransport
from airflow_llm_batch.exceptions import InvalidInputError, LLMBatchError, ProviderError
from airflow_llm_batch.pipeline.backend import NO_HINTS, FindHints, OpenChunk, each_answer
from airflow_llm_batch.pipeline.types import BatchLimits, BatchProgress, Endpoint, LLMRequest, RawResult

log = logging.getLogger(__name__)

MIB = 1024 * 1024
SAFE_CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
DEFAULT_MAX_TOKENS = 1024
CACHE_SYSTEM_PROMPT = "cache_system_prompt"
JSON_INSTRUCTION = "Answer with a single JSON object and nothing else: no prose, no code fences."
TOOL_DESCRIPTION = "Record the answer. Always call this tool with the complete answer as its input."

#: OpenAI-only request params -> what to use instead (refused at validation, before any payment)
OPENAI_ONLY_PARAMS = {
    "max_completion_tokens": "max_tokens",
    "stop": "stop_sequences",
    "response_format": "the operator's response_format",
    "n": "one request per row",
    "seed": "nothing (not supported)",
    "logprobs": "nothing (not supported)",
    "frequency_penalty": "nothing (not supported)",
    "presence_penalty": "nothing (not supported)",
}

#: 429 and 529 (rate limited, overloaded) prove no batch was created; another 5xx or a lost
#: connection may hide one (the look-up matches its size, never a batch listed before the call)
CREATE_ANSWERS = CreateAnswers(
    service="Anthropic", api_error=anthropic.APIStatusError,
    status_of=lambda exc: cast(anthropic.APIStatusError, exc).status_code,
    describe=lambda exc: f"({cast(anthropic.APIStatusError, exc).status_code}): {_api_message(exc)}",
    refused_statuses=frozenset({429, 529}), unclear_errors=(anthropic.APIConnectionError,),  # includes timeouts
)
#: after an unclear create failure, batches created this long before the call are candidates (clock skew)
CREATE_LOOKBACK_SECONDS = 60.0


class AnthropicBatchBackend:
    """Message Batches through ``/v1/messages/batches`` with an ``AsyncAnthropic`` client.

    Example: ``AnthropicBatchBackend(AsyncAnthropic(base_url="http://127.0.0.1:8787", api_key="x"))``

    :param create_retry_delays: seconds to wait before each new try of a create that failed
        transiently (429, 5xx, lost connection); after a failure that may hide a created batch (5xx
        other than 529, lost connection) the backend looks for that batch before trying again.
    """

    name: ClassVar[str] = "anthropic"
    limits: ClassVar[BatchLimits] = BatchLimits(
        # the create body wraps the lines in {"requests":[...]}: keep a margin under 256 MB
        max_requests=100_000, max_bytes=256 * MIB - 64 * 1024, max_request_bytes=32 * MIB,
        results_retention_seconds=28 * 86_400.0)  # results downloadable 29 days after creation
    endpoint_identity = ClientEndpoint()
    #: a provider batch API exists (``mode="auto"`` falls back to real time when it does not)
    has_batch_api: ClassVar[bool] = True

    def __init__(self, client: AsyncAnthropic, *,
                 create_retry_delays: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)) -> None:
        self.client = client
        self.guard = CreateGuard(CREATE_ANSWERS, f"the Anthropic endpoint {client.base_url}", create_retry_delays)
        self.realtime = RealtimeTransport(lambda: stainless_target(client))  # raw real-time sends (or the SDK's)

    # -- building ----------------------------------------------------------------------------------
    def custom_id_for(self, key: str) -> str:
        """The key itself when Anthropic accepts it, else a deterministic safe id derived from it."""
        if SAFE_CUSTOM_ID.fullmatch(key):
            return key
        return "k_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:62]

    def request_line(self, request: LLMRequest) -> dict[str, object]:
        return {"custom_id": request.custom_id, "params": self.request_params(request)}

    def request_params(self, request: LLMRequest) -> dict[str, Any]:
        """The Messages API params of one request."""
        if request.endpoint != Endpoint.CHAT:
            raise InvalidInputError(f"Anthropic batches only run messages, not {request.endpoint.value!r}; "
                                    f"use endpoint='chat_completions'")
        params = dict(request.params)
        _refuse_openai_params(params)
        cache = bool(params.pop(CACHE_SYSTEM_PROMPT, False))
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": params.pop("max_tokens", DEFAULT_MAX_TOKENS),
            "messages": [{"role": "user", "content": request.prompt}],
        }
        system = _system_text(request)
        if system:
            body["system"] = [_cached_block(system)] if cache else system
        if request.response_schema is not None:
            if params.get("thinking"):
                raise InvalidInputError("a response schema forces a tool call, which Anthropic does not "
                                        "allow with extended thinking: drop 'thinking' from request_params")
            body.update(_forced_tool(request.response_schema, request.schema_name))
        return {**body, **params}

    # -- talking to the service --------------------------------------------------------------------
    async def submit(self, open_chunk: OpenChunk, count: int, tags: dict[str, str]) -> str:
        requests = list(_read_requests(open_chunk))
        if len(requests) != count:
            raise LLMBatchError(f"chunk {tags.get('chunk')} holds {len(requests)} requests, expected "
                                f"{count}; nothing was submitted")
        batch_id = await self._create(requests, tags.get("llm_batch_tag", ""))
        log.info("Created Anthropic batch %s with %d requests (intent %s)", batch_id, count,
                 tags.get("llm_batch_tag"))
        return batch_id

    async def _create(self, requests: list[dict[str, Any]], tag: str) -> str:
        """Create the batch once (SDK retries off); see "Creating a batch" in the module docstring."""
        client = self.client.with_options(max_retries=0)  # an SDK retry could create a second batch
        known, started = await self._newest_ids(), time.time()

        async def make() -> str:
            return (await client.messages.batches.create(requests=requests)).id  # type: ignore[arg-type]

        hints = FindHints(count=len(requests), exclude=known)
        return await self.guard.create(make, lambda: self.find(tag, started - CREATE_LOOKBACK_SECONDS, hints))

    async def _newest_ids(self) -> set[str]:
        """Ids of the newest batches before a create: never mistaken for the one it makes."""
        try:
            page = await self.client.messages.batches.list(limit=100)
        except CREATE_ANSWERS.errors as exc:
            what = ("Anthropic refused to list batches" if isinstance(exc, anthropic.APIStatusError)
                    else f"cannot reach {self.guard.where}")
            raise ProviderError(f"{what} {CREATE_ANSWERS.detail(exc)}; nothing was submitted") from exc
        return {batch.id for batch in page.data}

    async def find(self, tag: str, created_after: float, hints: FindHints = NO_HINTS) -> list[str]:
        """Batches that may hold the chunk of intent ``tag`` (see the module docstring for the rules).

        ``tag`` cannot be read from an Anthropic batch; it is only logged.
        """
        found: list[str] = []
        async for batch in self.client.messages.batches.list(limit=100):
            if batch.created_at.timestamp() < created_after:
                break  # newest first: everything further is older
            if await self._may_hold(batch, hints):
                found.append(batch.id)
        log.info("Intent %s: %d candidate batch(es) since %.0f (count=%s, id checked=%s): %s",
                 tag, len(found), created_after, hints.count, hints.first_custom_id is not None, found)
        return found

    async def _may_hold(self, batch: MessageBatch, hints: FindHints) -> bool:
        if batch.id in hints.exclude or (hints.count is not None and total(batch.request_counts) != hints.count):
            return False
        if hints.first_custom_id and batch.processing_status == "ended":
            return await self._holds(batch.id, hints.first_custom_id)
        return True

    async def _holds(self, batch_id: str, custom_id: str) -> bool:
        """Whether an ended batch's results hold ``custom_id`` (stops reading at the first match)."""
        async with aclosing(self.results(batch_id)) as answers:
            async for answer in answers:
                if answer.custom_id == custom_id:
                    return True
        return False

    async def progress(self, batch_id: str) -> BatchProgress:
        return batch_progress((await self.client.messages.batches.retrieve(batch_id)).to_dict())

    def results(self, batch_id: str) -> AsyncGenerator[RawResult, None]:
        return each_answer(self.result_blocks(batch_id))

    async def result_blocks(self, batch_id: str) -> AsyncGenerator[list[RawResult], None]:
        """The batch's answers, read from the results file's bytes as it downloads (``read_results_line``'s
        way, a list per downloaded piece): a blank line is skipped, a broken one is counted and skipped (its
        row ends ``missing_result``, which the retry policy sends again) and logged once, so one bad line
        never stops the collect."""
        reader = LineReader(decode_common_line, read_other_line, results_object)
        async with _download(self.client, batch_id) as response:
            async for answers in answer_blocks_of(response.iter_bytes(), reader, f"the results of batch {batch_id}"):
                yield answers

    async def cancel(self, batch_id: str) -> None:
        try:
            await self.client.messages.batches.cancel(batch_id)
        except anthropic.APIStatusError as exc:  # already ended, or unknown: nothing left to stop
            log.info("Cancel of batch %s not applied (%s)", batch_id, exc.status_code)

    async def aclose(self) -> None:
        await self.realtime.aclose()
        await self.client.close()

    async def realtime_send(self, request_line: dict[str, Any]) -> RawResult:
        """One request line sent on the provider's ordinary endpoint, decoded as batch results are
        (:mod:`airflow_llm_batch.backends.realtime_anthropic`); CallFailed when no answer came."""
        return await realtime_anthropic.send(self.client, request_line, self.realtime.sender())

    async def count_tokens(self, request_line: dict[str, Any]) -> int:
        """The line's input tokens from ``/v1/messages/count_tokens`` (free; ``estimate="api"``)."""
        return await anthropic_count(self.client, request_line)


# -- translation helpers ---------------------------------------------------------------------------
def _refuse_openai_params(params: dict[str, Any]) -> None:
    wrong = sorted(set(params) & set(OPENAI_ONLY_PARAMS))
    if wrong:
        hints = ", ".join(f"{name} -> {OPENAI_ONLY_PARAMS[name]}" for name in wrong)
        raise InvalidInputError(f"request_params {wrong} are OpenAI parameters that Anthropic rejects "
                                f"({hints})")


def _system_text(request: LLMRequest) -> str | None:
    if request.json_output and request.response_schema is None:
        return f"{request.system_prompt}\n\n{JSON_INSTRUCTION}" if request.system_prompt else JSON_INSTRUCTION
    return request.system_prompt


def _cached_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}


def _forced_tool(schema: dict[str, Any], schema_name: str) -> dict[str, Any]:
    """A tool the model must call, whose input is the structured answer."""
    if schema.get("type", "object") != "object":
        raise InvalidInputError(
            f"Anthropic returns structured answers as a tool input, which is an object; the response schema "
            f"is of type {schema.get('type')!r}: wrap it in an object"
        )
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", schema_name)[:64] or "result"
    description = TOOL_DESCRIPTION + (f" {schema['description']}" if schema.get("description") else "")
    return {"tools": [{"name": name, "description": description, "input_schema": schema}],
            "tool_choice": {"type": "tool", "name": name}}


def _read_requests(open_chunk: OpenChunk) -> Iterator[dict[str, Any]]:
    with open_chunk() as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


@contextlib.asynccontextmanager
async def _download(client: AsyncAnthropic, batch_id: str) -> AsyncIterator[Any]:
    """Open the results of a batch with the SDK's own request (batch look-up, then its ``results_url``), its
    bytes unread; a failure past the client's own retries says what it means and what to do."""
    try:
        async with client.messages.batches.with_streaming_response.results(batch_id) as response:
            yield response
    except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
        raise download_failed(f"the results of batch {batch_id}", client.max_retries, exc) from exc


def _api_message(exc: BaseException) -> str:
    error = cast(anthropic.APIStatusError, exc)
    return str(error.api_message or error.message)
