"""Provider-neutral request, result, status and usage types shared by every layer."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from typing import Any, NamedTuple, cast


class Endpoint(str, enum.Enum):
    """What kind of call each request of a batch makes."""

    CHAT = "chat_completions"
    RESPONSES = "responses"
    EMBEDDINGS = "embeddings"

    @classmethod
    def parse(cls, value: str | Endpoint) -> Endpoint:
        if isinstance(value, Endpoint):
            return value
        text = value.strip().lower().lstrip("/").removeprefix("v1/").replace("/", "_")
        aliases = {"chat": cls.CHAT, "chat_completions": cls.CHAT, "responses": cls.RESPONSES,
                   "embeddings": cls.EMBEDDINGS, "embedding": cls.EMBEDDINGS}
        if text not in aliases:
            raise ValueError(f"unknown endpoint {value!r}; use one of {[e.value for e in cls]}")
        return aliases[text]


class BatchState(str, enum.Enum):
    """Neutral lifecycle of one provider batch."""

    PENDING = "pending"
    RUNNING = "running"
    CANCELLING = "cancelling"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def has_results(self) -> bool:
        """Whether answers may be downloaded (expired and cancelled batches keep finished rows)."""
        return self in (BatchState.COMPLETED, BatchState.EXPIRED, BatchState.CANCELLED)


TERMINAL_STATES = frozenset(
    {BatchState.COMPLETED, BatchState.FAILED, BatchState.EXPIRED, BatchState.CANCELLED}
)


class FinishReason(str, enum.Enum):
    """Why the model stopped, in one vocabulary for every provider (each backend maps its own words).

    * ``stop``: a natural end or a stop sequence (OpenAI ``stop``, Anthropic ``end_turn`` /
      ``stop_sequence``, Gemini ``STOP``);
    * ``length``: the output token limit cut the answer (``length``, ``max_tokens``, ``MAX_TOKENS``);
    * ``tool_use``: it stopped to call a tool (``tool_calls``, ``tool_use``);
    * ``content_filter``: a safety or content filter withheld or cut the answer (OpenAI/Azure
      ``content_filter``, Gemini ``SAFETY``, ``RECITATION``, ``BLOCKLIST``...);
    * ``refusal``: the model declined to answer (Anthropic ``refusal``);
    * ``other``: anything else (Gemini ``MALFORMED_FUNCTION_CALL``, Anthropic ``pause_turn``...).

    Example: ``FinishReason.parse("MAX_TOKENS") is FinishReason.LENGTH``
    """

    STOP = "stop"
    LENGTH = "length"
    TOOL_USE = "tool_use"
    CONTENT_FILTER = "content_filter"
    REFUSAL = "refusal"
    OTHER = "other"

    @property
    def is_complete(self) -> bool:
        """Whether the answer ended as the model meant it to (nothing cut or withheld)."""
        return self in (FinishReason.STOP, FinishReason.TOOL_USE)

    @classmethod
    def parse(cls, value: str | FinishReason | None) -> FinishReason | None:
        """A provider's word, or a value stored by an older version (cache entries), -> the neutral
        reason; a word no table knows -> ``other``; nothing -> None."""
        if value is None or isinstance(value, FinishReason):
            return value
        if type(value) is str and value in PROVIDER_FINISH_WORDS:  # the provider's word as is: most answers
            return PROVIDER_FINISH_WORDS[value]
        word = str(value).strip().lower()
        return PROVIDER_FINISH_WORDS.get(word, cls.OTHER) if word else None


#: every provider's finish/stop word (lower case) -> the neutral reason; one table for all backends
PROVIDER_FINISH_WORDS: dict[str, FinishReason] = {
    **dict.fromkeys(("stop", "end_turn", "stop_sequence", "completed"), FinishReason.STOP),
    **dict.fromkeys(("length", "max_tokens", "max_output_tokens", "model_context_window_exceeded"),
                    FinishReason.LENGTH),
    **dict.fromkeys(("tool_use", "tool_calls", "function_call"), FinishReason.TOOL_USE),
    **dict.fromkeys(("content_filter", "safety", "recitation", "blocklist", "prohibited_content", "spii",
                     "image_safety", "image_prohibited_content", "image_recitation"), FinishReason.CONTENT_FILTER),
    "refusal": FinishReason.REFUSAL,
}


class RowStatus(str, enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Usage(NamedTuple):
    """Token counts of one request or a sum of many (a named tuple: cheaper to make than a dataclass)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:  # type: ignore[override]  # counts add up, tuples do not join
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
        )

    def to_dict(self) -> dict[str, int]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "cached_input_tokens": self.cached_input_tokens, "total_tokens": self.total_tokens}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Usage:
        data = data or {}
        return cls(
            int(data.get("input_tokens", 0)),
            int(data.get("output_tokens", 0)),
            int(data.get("cached_input_tokens", 0)),
        )


_NO_USAGE = Usage()


@dataclass(frozen=True)
class BatchLimits:
    """What one provider batch may hold."""

    max_requests: int
    max_bytes: int
    max_request_bytes: int
    #: how long after it was sent a batch's answers can still be downloaded (the request cache
    #: adopts in-flight batches of an earlier run only within this window)
    results_retention_seconds: float = 86_400.0


@dataclass(frozen=True)
class LLMRequest:
    """One rendered row, in provider-neutral form.

    Example: ``LLMRequest(custom_id="t-1", key="t-1", model="gpt-4o-mini", endpoint=Endpoint.CHAT,
    prompt="Classify: ...", system_prompt="You triage tickets.")``
    """

    custom_id: str
    key: str
    model: str
    endpoint: Endpoint
    prompt: str
    system_prompt: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    response_schema: dict[str, Any] | None = None
    schema_name: str = "result"
    json_output: bool = False


class _AnswerFields(NamedTuple):
    custom_id: str
    ok: bool
    text: str | None
    embedding: list[float] | None
    model: str | None
    #: (input, output, cached input) token counts: a plain tuple of ints (see RawResult)
    tokens: tuple[int, int, int]
    error_code: str | None
    error_message: str | None
    finish_reason: FinishReason | None


class RawResult(_AnswerFields):
    """One provider answer, already decoded from the provider's format but not yet parsed.

    ``error_code`` names the same situation the same way whatever the provider: ``prompt_blocked``
    (a filter refused the prompt: no answer was made), ``content_filter`` (a filter withheld the
    answer), ``refusal`` (the model declined), and the retry policy's codes (``rate_limit_exceeded``,
    ``server_error``, ``invalid_request_error``...). A cut answer is not an error here: it is
    ``finish_reason=length``, and the join calls it ``truncated`` when it does not parse.

    Made as ``RawResult(custom_id, ok, text, embedding, model, usage, error_code, error_message,
    finish_reason)`` (all but the first two optional); ``usage`` may be a :class:`Usage` or a plain
    ``(input, output, cached input)`` tuple. A named tuple, not a dataclass: a chunk holds one answer per
    row until it is joined, and the cyclic garbage collector walks every object it holds. A frozen
    dataclass answer was two such objects (itself and its Usage); this is one: its counts are kept as a
    plain tuple of ints, which the collector stops watching, and ``usage`` is made when it is read.
    """

    __slots__ = ()

    def __new__(cls, custom_id: str, ok: bool, text: str | None = None, embedding: list[float] | None = None,
                model: str | None = None, usage: tuple[int, int, int] = (0, 0, 0), error_code: str | None = None,
                error_message: str | None = None, finish_reason: FinishReason | None = None) -> RawResult:
        return tuple.__new__(cls, (custom_id, ok, text, embedding, model, tuple(usage), error_code, error_message,
                                   finish_reason))

    @property
    def usage(self) -> Usage:
        return Usage._make(self.tokens)


#: the row code of an answer line that is JSON but of no shape its provider's decoder knows
UNREADABLE_ANSWER = "unreadable_answer"


def unreadable_answer(custom_id: object, error: BaseException) -> RawResult:
    """The failed answer of a row whose answer line could not be read (not retried: it may have been paid)."""
    return RawResult(str(custom_id), ok=False, error_code=UNREADABLE_ANSWER,
                     error_message=f"the provider's answer line for this row has an unexpected shape "
                                   f"({type(error).__name__}); it is not retried (it may have been paid)")


#: A RawResult from its nine fields given as one tuple, taken as they are (``tokens`` a plain tuple of three
#: ints; nothing is converted or checked): one C call where ``RawResult(...)`` is a Python one (~0.3 us less),
#: for a decoder's fast path that has checked its fields itself (backends/openai.py)
raw_result_of = cast(Callable[[tuple[Any, ...]], RawResult], partial(tuple.__new__, RawResult))


@dataclass
class ResultRow:
    """What lands for each input row: exactly one per row, succeeded or failed with a reason."""

    key: str
    status: RowStatus
    output: str | None = None
    parsed: Any = None
    error: dict[str, str] | None = None
    usage: Usage = _NO_USAGE
    model: str | None = None
    batch_id: str | None = None
    custom_id: str | None = None
    attempts: int = 1
    cached: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    #: the path that answered the row: "batch", "realtime" or "cache" (set when the results are read)
    answered_by: str = "batch"

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "status": self.status.value,
            "output": self.output,
            "parsed": self.parsed,
            "error": self.error,
            "usage": self.usage.to_dict(),
            "model": self.model,
            "batch_id": self.batch_id,
            "custom_id": self.custom_id,
            "attempts": self.attempts,
            "cached": self.cached,
            "answered_by": self.answered_by,
            **self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResultRow:
        """A row as ``to_dict`` wrote it (read once per row when landing: no per-call constants)."""
        get = data.get
        status = _STATUS_OF.get(data["status"]) or RowStatus(data["status"])
        usage = get("usage")
        cached = get("cached", False)
        return cls(
            data["key"], status, get("output"), get("parsed"), get("error"),
            Usage.from_dict(usage) if usage else _NO_USAGE, get("model"), get("batch_id"), get("custom_id"),
            int(get("attempts", 1)), bool(cached),
            extra={k: v for k, v in data.items() if k not in _ROW_FIELDS} if data.keys() - _ROW_FIELDS else {},
            answered_by=str(get("answered_by") or ("cache" if cached else "batch")),
        )


def result_record(data: dict[str, Any], answered_by: str | None = None) -> dict[str, Any]:
    """A stored row (a results file line's object) as ``ResultRow.from_dict(data).to_dict()`` gives it,
    with ``answered_by`` set when given: what landing writes for the row, without building the row.

    A line laid out as ``to_dict`` writes it (its keys in that order, a known status, the usage with its
    four integer counts adding up, integer attempts, boolean cached) already is that dict: it is
    returned itself (``answered_by`` set in place). Anything else (an older layout, a hand edit) goes
    through ``from_dict`` and ``to_dict``, so both ways give the same record."""
    if _laid_out_as_written(data):
        if answered_by:
            data["answered_by"] = answered_by
        return data
    row = ResultRow.from_dict(data)
    row.answered_by = answered_by or row.answered_by
    return row.to_dict()


def _laid_out_as_written(data: dict[str, Any]) -> bool:
    """Whether ``to_dict`` would write ``data`` back unchanged (~0.6 us: cheaper than the round trip)."""
    usage = data.get("usage")
    if type(usage) is not dict or tuple(usage) != _USAGE_KEYS or tuple(islice(data, 12)) != _ROW_KEYS:
        return False
    tokens_in, tokens_out, tokens_cached, total = usage.values()
    return (type(tokens_in) is int and type(tokens_out) is int and type(tokens_cached) is int
            and total == tokens_in + tokens_out and data["status"] in _STATUS_OF
            and type(data["attempts"]) is int and type(data["cached"]) is bool
            and type(data["answered_by"]) is str and data["answered_by"] != "")


#: the keys ``ResultRow.to_dict`` writes itself, in its order; any other key of a stored row is an ``extra``
_ROW_KEYS = ("key", "status", "output", "parsed", "error", "usage", "model", "batch_id", "custom_id", "attempts",
             "cached", "answered_by")
_ROW_FIELDS = frozenset(_ROW_KEYS)
_USAGE_KEYS = ("input_tokens", "output_tokens", "cached_input_tokens", "total_tokens")
_STATUS_OF = {status.value: status for status in RowStatus}


@dataclass(frozen=True)
class BatchProgress:
    """A poll's view of one provider batch.

    ``provider_status`` is the provider's own word for the state (``in_progress``,
    ``JOB_STATE_RUNNING``...), for logs; ``total``/``completed``/``failed`` are its request counts
    so far (0 when it does not report them); ``errors`` are the batch-level errors (``code``,
    ``message``, optional ``line``) of a failed batch.
    """

    batch_id: str
    state: BatchState
    provider_status: str
    total: int = 0
    completed: int = 0
    failed: int = 0
    errors: tuple[dict[str, Any], ...] = ()
    #: epoch seconds the batch was first seen running (set by the wait, pipeline/waiting.py), or None
    running_since: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "state": self.state.value,
            "provider_status": self.provider_status,
            "total": self.total,
            "completed": self.completed,
            "failed": self.failed,
            "errors": list(self.errors),
            "running_since": self.running_since,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchProgress:
        return cls(
            batch_id=data["batch_id"],
            state=BatchState(data["state"]),
            provider_status=data.get("provider_status", ""),
            total=int(data.get("total", 0)),
            completed=int(data.get("completed", 0)),
            failed=int(data.get("failed", 0)),
            errors=tuple(data.get("errors", ())),
            running_since=data.get("running_since"),
        )
