"""Fault injection: one-off HTTP faults and the fault plan, for both OpenAI and Anthropic batches.

Two mechanisms make the emulator misbehave on purpose, so tests can prove that clients retry,
resubmit and never pay twice:

:class:`Fault` (``emu.inject_fault(...)``, ``POST /_emulator/faults``)
    The next ``count`` API requests matching a path prefix (and method) get an HTTP error,
    optionally after being carried out (``lose_response``). Targeted and counted.

:class:`FaultPlan` (``emu.set_fault_plan(plan)`` / ``emu.clear_fault_plan()``,
``POST``/``GET``/``DELETE /_emulator/fault-plan``, ``EmulatorConfig(fault_plan=...)``, and the
``--row-error-rate``... flags of the command line)
    A standing, deterministic description of how unreliable the service is. Setting a plan (or
    clearing it) restarts every counter below. Knobs (all off by default):

    ``row_error_rate``, ``row_error_code``, ``row_error_times``
        A custom_id is *selected* when ``stable_hash("row-error", seed, custom_id)`` falls in the
        first ``row_error_rate`` share of the hash range (:meth:`FaultPlan.row_error_selected`
        predicts it). A selected custom_id fails its first ``row_error_times`` submissions
        (0: every submission) with ``row_error_code``, exactly as the
        ``[[emulator:error:CODE]]`` prompt marker does: OpenAI writes a response with the
        marker's HTTP status (``server_error`` -> 500, ``rate_limit_exceeded`` -> 429, unknown
        codes -> 400) to the error file; Anthropic reports ``{"type": "errored"}`` with
        ``error.error.type == CODE``. Submissions are counted per provider and custom_id across
        batches, when a batch is created (OpenAI: not in batches that fail validation or the
        enqueued token limit), so with ``row_error_times=1`` the same custom_id succeeds when
        sent again in a new batch.
    ``expire_batches``, ``expire_done_fraction``
        The first ``expire_batches`` batches created after the plan is set (either provider;
        OpenAI batches that fail validation or the token limit do not count) expire as soon as
        ``ceil(expire_done_fraction * total)`` of their requests are answered. OpenAI: status
        ``expired``, answered rows in the output/error files, unanswered rows in the error file
        as ``batch_expired``. Anthropic: ``ended``, unanswered rows ``{"type": "expired"}``.
    ``http_error_rate``, ``http_error_statuses``
        That share of API requests (every provider route, never ``/_emulator/*``; after the API
        key check) is answered with a transient error BEFORE any processing, so a retried create
        never creates a second batch. The choice is deterministic: request number ``n`` (counted
        from the moment the plan is set) fails when ``floor((n + 1) * rate + phase)`` steps over
        ``floor(n * rate + phase)``, ``phase`` derived from the seed. Any run of requests thus
        gets the share within one request, and failures never come in bursts (up to 50%, never
        two in a row), so a client's retries get through (the SDKs retry twice by default; the
        requests of concurrent clients share the count). Statuses are taken
        in turn from ``http_error_statuses``, starting at ``seed % len``. Bodies are each
        provider's real error shape (OpenAI ``{"error": {"message", "type", "param", "code"}}``;
        Anthropic ``{"type": "error", "error": {"type": "rate_limit_error" | "api_error" |
        "overloaded_error", ...}}``; on Anthropic routes 503 is sent as 529
        ``overloaded_error``, the status Anthropic uses when overloaded). Every such answer
        carries ``retry-after: 0`` and ``retry-after-ms: 10``: both SDKs read ``retry-after-ms``
        first and, as it is positive, wait 10 ms instead of their exponential backoff.
    ``lost_creates``, ``lost_create_status``, ``hung_creates``, ``hang_seconds``
        The answer to a batch create that worked is lost: the batch exists and will be billed,
        but the client never learns it. Counted over the creates that succeed (every provider:
        OpenAI/Azure ``POST /batches``, Anthropic ``POST /v1/messages/batches``, Gemini
        ``:batchGenerateContent``, Vertex ``POST .../batchPredictionJobs``) after the plan is
        set: the first ``lost_creates`` are answered with ``lost_create_status`` in the
        provider's error shape (0: the connection is dropped with no answer at all); the next
        ``hung_creates`` get no answer until the client gives up (its timeout) or
        ``hang_seconds`` pass, then the connection is dropped. This is the path where a blind
        retry pays twice; a client that looks its batch up by tag before retrying does not.
        Statuses that promise nothing was created (429, 503, which Anthropic routes send as
        529) are refused here.
    ``slow_factor``
        Batches created while the plan is set answer ``requests_per_second / slow_factor``
        requests per second.
    ``malformed_output_rate``
        A custom_id selected by ``stable_hash("malformed", seed, custom_id)``
        (:meth:`FaultPlan.malformed_selected`) gets a broken line (its JSON cut in half) the
        first time it is written to an OpenAI output file or Anthropic results after the plan is
        set; later deliveries are intact, so clients that resend unreadable rows recover. A
        broken line does not count as a delivered answer in ``succeeded_by_custom_id`` (it does
        count in ``malformed_lines``).
    ``enqueued_token_limit``
        OpenAI: overrides ``EmulatorConfig.enqueued_token_limit`` while the plan is set. Every
        unfinished batch counts, including those created before the plan.
    ``seed``
        Seeds every choice above; the same plan always picks the same custom_ids and requests.

    A batch takes the plan in force when it is created (which rows fail, whether it expires, its
    pace, whether its lines may break) and keeps it if the plan changes later; HTTP errors and the
    token limit follow the plan in force at each request.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import model
from .fault_plan_checks import (
    COUNT_FIELDS,
    SHARE_FIELDS,
    check_lost_create_status,
    count,
    error_statuses,
    hang_seconds,
    number,
    share,
    slow_factor,
)

RETRY_AFTER_HEADERS: Mapping[str, str] = {"retry-after": "0", "retry-after-ms": "10"}
"""Headers of every injected transient error: retry (almost) at once."""

_HASH_RANGE = 1 << 64


class CreateFault(enum.Enum):
    """What happens to the answer of a batch create that worked (see ``lost_creates``)."""

    LOST = "lost"
    HUNG = "hung"


@dataclass
class Fault:
    """An injected HTTP failure: the next ``count`` matching requests get ``status``.

    Matches requests whose path starts with ``path_prefix`` and, when set, whose method is
    ``method``. Lets tests exercise retry and backoff of polling clients. With
    ``lose_response`` the request is carried out first and only its answer is replaced by the
    error: a create that succeeded on the server while the client saw a failure (the case that
    makes naive retries pay twice).
    """

    status: int
    count: int = 1
    path_prefix: str = "/"
    method: str | None = None
    message: str = "Fault injected by the emulator."
    lose_response: bool = False

    def matches(self, method: str, path: str) -> bool:
        return (
            self.count > 0
            and path.startswith(self.path_prefix)
            and (self.method is None or self.method.upper() == method.upper())
        )


def _share_selected(rate: float, *parts: str) -> bool:
    """True for a deterministic ``rate`` share of all ``parts`` values."""
    if rate <= 0:
        return False
    if rate >= 1:
        return True
    return model.stable_hash(*parts) < rate * _HASH_RANGE


@dataclass(frozen=True)
class FaultPlan:
    """How unreliable the emulated services are (see the module documentation for each knob)."""

    row_error_rate: float = 0.0
    """Share of custom_ids that fail, chosen by a stable hash of (seed, custom_id)."""
    row_error_code: str = "server_error"
    """Error code of those failures (same status/type mapping as ``[[emulator:error:CODE]]``)."""
    row_error_times: int = 1
    """A selected custom_id fails its first N submissions (across batches); 0 = every time."""
    expire_batches: int = 0
    """The first N batches created after the plan is set expire..."""
    expire_done_fraction: float = 0.6
    """...as soon as this share of their requests is answered."""
    http_error_rate: float = 0.0
    """Share of API HTTP requests answered with a transient error before any processing."""
    http_error_statuses: tuple[int, ...] = (429, 500, 503)
    """Statuses of those errors, taken in turn (starting at ``seed % len``)."""
    slow_factor: float = 1.0
    """Divide the processing pace of new batches by this."""
    malformed_output_rate: float = 0.0
    """Share of custom_ids whose first output/results line is broken JSON."""
    lost_creates: int = 0
    """The first N successful batch creates (after the plan is set) lose their answer..."""
    lost_create_status: int = 502
    """...which the client gets as this 5xx status (0: the connection drops without an answer)."""
    hung_creates: int = 0
    """The next N successful creates answer nothing until the client times out..."""
    hang_seconds: float = 30.0
    """...or this many seconds pass; then the connection drops."""
    enqueued_token_limit: int | None = None
    """OpenAI: per-model cap on prompt tokens of unfinished batches (overrides the config)."""
    seed: int = 0
    """Seeds every deterministic choice."""

    def __post_init__(self) -> None:
        for name in SHARE_FIELDS:
            object.__setattr__(self, name, share(name, getattr(self, name)))
        number("seed", self.seed, integer=True)
        for name in COUNT_FIELDS:
            count(name, getattr(self, name))
        object.__setattr__(self, "slow_factor", slow_factor(self.slow_factor))
        object.__setattr__(self, "hang_seconds", hang_seconds(self.hang_seconds))
        check_lost_create_status(self.lost_create_status)
        if not isinstance(self.row_error_code, str) or not self.row_error_code:
            raise ValueError("row_error_code must be a non-empty string")
        if self.enqueued_token_limit is not None and (
            number("enqueued_token_limit", self.enqueued_token_limit, integer=True) < 1
        ):
            raise ValueError("enqueued_token_limit must be >= 1 when set")
        object.__setattr__(self, "http_error_statuses", error_statuses(self.http_error_statuses))

    @classmethod
    def from_json(cls, payload: Any) -> FaultPlan:
        """A plan from a JSON object of its fields (unknown fields are an error)."""
        if not isinstance(payload, Mapping):
            raise TypeError("the fault plan must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(payload) - known)
        if unknown:
            raise TypeError(f"unknown fault plan fields: {', '.join(map(str, unknown))}")
        return cls(**payload)

    def to_json(self) -> dict[str, Any]:
        """The plan's fields, JSON-ready."""
        fields = dataclasses.asdict(self)
        fields["http_error_statuses"] = list(self.http_error_statuses)
        return fields

    def replace(self, **changes: Any) -> FaultPlan:
        """Return a copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def row_error_selected(self, custom_id: str) -> bool:
        """Whether ``custom_id`` is one of the ``row_error_rate`` share that fails."""
        return _share_selected(self.row_error_rate, "row-error", str(self.seed), custom_id)

    def malformed_selected(self, custom_id: str) -> bool:
        """Whether the first output line of ``custom_id`` is written broken."""
        return _share_selected(self.malformed_output_rate, "malformed", str(self.seed), custom_id)


def break_line(line: bytes) -> bytes:
    """A JSONL line cut in half: never valid JSON (an object loses its closing brace)."""
    text = line.rstrip(b"\n")
    return text[: max(1, len(text) // 2)] + b"\n"


@dataclass(frozen=True)
class BatchFaults:
    """What the plan does to one batch, fixed when the batch is created."""

    plan: FaultPlan
    failing: frozenset[str] = frozenset()
    """custom_ids of the batch that fail with ``plan.row_error_code``."""
    expires: bool = False

    def row_error(self, custom_id: str) -> str | None:
        """The error code ``custom_id`` fails with in this batch, None when it is answered."""
        return self.plan.row_error_code if custom_id in self.failing else None

    def expire_after(self, total: int) -> int | None:
        """How many requests are answered before the batch expires, None when it does not."""
        if not self.expires:
            return None
        return min(total, math.ceil(round(self.plan.expire_done_fraction * total, 9)))

    def pace(self, requests_per_second: float) -> float:
        """The batch's processing pace."""
        return requests_per_second / self.plan.slow_factor


class FaultPlanState:
    """The fault plan in force and its counters (touched only from the server's loop)."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self.plan: FaultPlan | None = None
        self._row_submissions: dict[tuple[str, str], int] = {}
        self._broken_lines: set[tuple[str, str]] = set()
        self._batches_expired = 0
        self._http_requests = 0
        self._http_errors = 0
        self._creates = 0
        self._phase = 0.0
        self.set(plan)

    def set(self, plan: FaultPlan | None) -> None:
        """Put ``plan`` in force (None: no plan) and restart every counter."""
        self.plan = plan
        self._row_submissions = {}
        self._broken_lines = set()
        self._batches_expired = 0
        self._http_requests = 0
        self._http_errors = 0
        self._creates = 0
        self._phase = 0.0 if plan is None else model.stable_hash("http-phase", str(plan.seed)) / _HASH_RANGE

    def for_batch(self, provider: str, custom_ids: Iterable[str]) -> BatchFaults | None:
        """The plan's effects on a batch being created now (counts its submissions)."""
        plan = self.plan
        if plan is None:
            return None
        failing: set[str] = set()
        if plan.row_error_rate > 0:
            for custom_id in custom_ids:
                if not plan.row_error_selected(custom_id):
                    continue
                key = (provider, custom_id)
                attempt = self._row_submissions.get(key, 0) + 1
                self._row_submissions[key] = attempt
                if plan.row_error_times == 0 or attempt <= plan.row_error_times:
                    failing.add(custom_id)
        expires = self._batches_expired < plan.expire_batches
        if expires:
            self._batches_expired += 1
        return BatchFaults(plan, frozenset(failing), expires)

    def breaks_line(self, provider: str, custom_id: str, plan: FaultPlan) -> bool:
        """Whether this line of ``custom_id`` is written broken (only its first one is)."""
        if not plan.malformed_selected(custom_id):
            return False
        key = (provider, custom_id)
        if key in self._broken_lines:
            return False
        self._broken_lines.add(key)
        return True

    def take_http_error(self) -> int | None:
        """The status of the transient error this API request gets, None for no error."""
        plan = self.plan
        if plan is None or plan.http_error_rate <= 0:
            return None
        number = self._http_requests
        self._http_requests += 1
        rate, phase = plan.http_error_rate, self._phase
        if math.floor((number + 1) * rate + phase) == math.floor(number * rate + phase):
            return None
        statuses = plan.http_error_statuses
        status = statuses[(self._http_errors + plan.seed) % len(statuses)]
        self._http_errors += 1
        return status

    def take_create_fault(self) -> CreateFault | None:
        """What happens to the answer of the batch create that just worked (counts it)."""
        plan = self.plan
        if plan is None or not (plan.lost_creates or plan.hung_creates):
            return None
        number = self._creates
        self._creates += 1
        if number < plan.lost_creates:
            return CreateFault.LOST
        if number < plan.lost_creates + plan.hung_creates:
            return CreateFault.HUNG
        return None

    def enqueued_token_limit(self, configured: int | None) -> int | None:
        """The enqueued token limit in force: the plan's when it sets one, else ``configured``."""
        if self.plan is not None and self.plan.enqueued_token_limit is not None:
            return self.plan.enqueued_token_limit
        return configured
