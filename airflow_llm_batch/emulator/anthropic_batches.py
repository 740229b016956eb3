"""Message batches of the emulated Anthropic API: validation, lifecycle and results.

A create call is validated at once (a bad request is a 400 and creates nothing, as the real API
does). The batch is ``in_progress`` from creation, answers ``requests_per_second`` requests per
second in a fixed order that is NOT the input order (sorted by a hash of custom_id), and ends
``finalizing_seconds`` after the last one. ``request_counts.processing`` stays at the total until
the batch ends; then the other counts are filled. A cancel moves it to ``canceling`` and, after
``cancelling_seconds``, to ``ended`` with unanswered requests ``canceled``; with
``expire_after_seconds`` a batch still running expires and unanswered requests are ``expired``.

Prompt caching is decided per batch at creation: among the requests whose system prompt marks a
``cache_control`` breakpoint, the first one (by custom_id order) with a given model and cached
prefix writes the cache (``cache_creation_input_tokens``), the others read it
(``cache_read_input_tokens``). Batches do not share a cache.

Deleting is allowed once a batch has ended (else 400). Cancelling a batch already being cancelled
returns it unchanged; cancelling a batch that ended without a cancel is a 400.

The fault plan (:mod:`.faults`) can fail chosen requests (``errored`` with ``error.type`` = the
plan's code), expire a batch part-way, slow it down and break results lines.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import model
from .anthropic_answers import CacheUse, cached_prefix, errored_result, message_result
from .lifecycle import Phase, Timeline
from .progress import Answer, BatchRun, Delivery, RowAnswerer
from .state import ApiError, EmulatorState, gc_paused
from .wire import jsonl_line, rfc3339

log = logging.getLogger(__name__)

PROVIDER = "anthropic"
EXPIRY_SECONDS = 24 * 3600
CUSTOM_ID_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class AnthropicError(ApiError):
    """An Anthropic-shaped error answer."""

    def __init__(self, status: int, message: str, type_: str | None = None) -> None:
        super().__init__(status, message)
        self.type_ = type_ or error_type_for(status)

    def body(self) -> dict[str, Any]:
        return {"type": "error", "error": {"type": self.type_, "message": self.message}}


def error_type_for(status: int) -> str:
    """Anthropic error ``type`` for an HTTP status."""
    return {
        400: "invalid_request_error",
        401: "authentication_error",
        402: "billing_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        504: "timeout_error",
        529: "overloaded_error",
    }.get(status, "api_error" if status >= 500 else "invalid_request_error")


@dataclass
class AnthropicRow:
    """One request of a batch."""

    custom_id: str
    params: dict[str, Any]
    cache: CacheUse = field(default_factory=CacheUse)


STATUS: dict[Phase, str] = {
    Phase.VALIDATING: "in_progress", Phase.IN_PROGRESS: "in_progress", Phase.FINALIZING: "in_progress",
    Phase.CANCELLING: "canceling", Phase.COMPLETED: "ended", Phase.EXPIRED: "ended", Phase.CANCELLED: "ended",
    Phase.FAILED: "ended",
}
UNANSWERED: dict[Phase, str] = {Phase.CANCELLED: "canceled", Phase.EXPIRED: "expired"}
"""The result type of the requests an ended batch never answered."""


@dataclass
class AnthropicBatch:
    """One message batch and its progress."""

    id: str
    created: float
    sequence: int
    expires: float
    run: BatchRun[AnthropicRow, bytes]
    canceled: int = 0
    expired: int = 0
    results_jsonl: bytes | None = None

    @property
    def status(self) -> str:
        return STATUS[self.run.now.phase]

    def to_json(self, base_url: str) -> dict[str, Any]:
        ended, progress = self.run.ended, self.run.progress
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.status,
            "request_counts": {
                "processing": 0 if ended else self.run.timeline.total,
                "succeeded": progress.succeeded if ended else 0,
                "errored": progress.failed if ended else 0,
                "canceled": self.canceled if ended else 0,
                "expired": self.expired if ended else 0,
            },
            "ended_at": rfc3339(self.run.now.ended_at),
            "created_at": rfc3339(self.created),
            "expires_at": rfc3339(self.expires),
            "archived_at": None,
            "cancel_initiated_at": rfc3339(self.run.timeline.cancelled_at),
            "results_url": f"{base_url}/v1/messages/batches/{self.id}/results" if ended else None,
        }


def _invalid(message: str) -> AnthropicError:
    return AnthropicError(400, message, "invalid_request_error")


def _check_params(index: int, params: Any) -> dict[str, Any]:
    where = f"requests.{index}.params"
    if not isinstance(params, dict):
        raise _invalid(f"{where}: Field required")
    if not isinstance(params.get("model"), str) or not params["model"]:
        raise _invalid(f"{where}.model: Field required")
    max_tokens = params.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise _invalid(f"{where}.max_tokens: Field required")
    if max_tokens < 1:
        raise _invalid(f"{where}.max_tokens: Input should be greater than or equal to 1")
    messages = params.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _invalid(f"{where}.messages: Field required (at least one message)")
    if params.get("stream"):
        raise _invalid(f"{where}.stream: Streaming is not supported in the Message Batches API")
    return params


def _assign_cache(rows: list[AnthropicRow]) -> None:
    """First request (by custom_id) per (model, cached prefix) writes the cache, later ones read it."""
    written: set[tuple[str, str]] = set()
    for row in sorted(rows, key=lambda r: r.custom_id):
        prefix = cached_prefix(row.params)
        if prefix is None:
            continue
        tokens = model.count_tokens(prefix)
        key = (str(row.params.get("model")), prefix)
        if key in written:
            row.cache = CacheUse(read=tokens)
        else:
            written.add(key)
            row.cache = CacheUse(creation=tokens)


class AnthropicBatches:
    """All message batches of the emulated Anthropic API."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.batches: dict[str, AnthropicBatch] = {}
        self.stats = state.stats_for(PROVIDER)

    def create_batch(self, payload: Any) -> AnthropicBatch:
        """Validate a create call (400 on any problem) and register the batch."""
        config = self.state.config
        if not isinstance(payload, Mapping):
            raise _invalid("The request body must be a JSON object.")
        requests = payload.get("requests")
        if not isinstance(requests, list) or not requests:
            raise _invalid("requests: Field required (at least one request)")
        if len(requests) > config.anthropic_max_requests_per_batch:
            limit = config.anthropic_max_requests_per_batch
            raise _invalid(f"requests: a batch holds at most {limit} requests, got {len(requests)}")
        with gc_paused():
            rows = self._parse_requests(requests)
        now = self.state.now()
        expire_after = config.expire_after_seconds
        faults = self.state.fault_plan.for_batch(PROVIDER, (row.custom_id for row in rows))
        timeline = Timeline.for_batch(now, config, validates=False, total=len(rows), faults=faults)
        batch = AnthropicBatch(
            id=self.state.new_id("msgbatch_"),
            created=now,
            sequence=self.state.next_sequence(),
            expires=now + (expire_after if expire_after is not None else EXPIRY_SECONDS),
            run=BatchRun(timeline, rows, faults),
        )
        self.batches[batch.id] = batch
        self.stats.batches_created += 1
        self.stats.batches.append(batch.id)
        self.stats.requests_by_custom_id.update(row.custom_id for row in rows)
        self.stats.accepted_requests_by_custom_id.update(row.custom_id for row in rows)
        log.info("anthropic batch %s created: %d requests", batch.id, len(rows))
        return batch

    @staticmethod
    def _parse_requests(requests: list[Any]) -> list[AnthropicRow]:
        """Validate every request (400 on the first problem); rows in processing order."""
        rows: list[AnthropicRow] = []
        seen: set[str] = set()
        for index, request in enumerate(requests):
            if not isinstance(request, Mapping):
                raise _invalid(f"requests.{index}: Input should be an object")
            custom_id = request.get("custom_id")
            if not isinstance(custom_id, str) or not CUSTOM_ID_PATTERN.match(custom_id):
                raise _invalid(
                    f"requests.{index}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
                )
            if custom_id in seen:
                raise _invalid(f"requests.{index}.custom_id: Duplicate custom_id {custom_id!r} in the batch")
            seen.add(custom_id)
            rows.append(AnthropicRow(custom_id, _check_params(index, request.get("params"))))
        _assign_cache(rows)
        rows.sort(key=lambda r: model.short_id(r.custom_id))
        return rows

    def get_batch(self, batch_id: str, now: float | None = None) -> AnthropicBatch:
        """The batch brought up to ``now`` (default: the clock)."""
        batch = self.batches.get(batch_id)
        if batch is None:
            raise AnthropicError(404, f"Message batch {batch_id!r} not found.")
        self.advance(batch, self.state.now() if now is None else now)
        return batch

    def list_batches(
        self, after_id: str | None, before_id: str | None, limit: int
    ) -> tuple[list[AnthropicBatch], bool]:
        """A page of batches, newest first, after ``after_id`` or before ``before_id``."""
        ordered = sorted(self.batches.values(), key=lambda b: b.sequence, reverse=True)

        def position(batch_id: str) -> int:
            found = next((i for i, b in enumerate(ordered) if b.id == batch_id), None)
            if found is None:
                raise AnthropicError(404, f"Message batch {batch_id!r} not found.")
            return found

        if before_id:
            newer = ordered[: position(before_id)]
            page, has_more = newer[-limit:], len(newer) > limit
        else:
            older = ordered[position(after_id) + 1 :] if after_id else ordered
            page, has_more = older[:limit], len(older) > limit
        now = self.state.now()
        for batch in page:
            self.advance(batch, now)
        return page, has_more

    def cancel_batch(self, batch_id: str) -> AnthropicBatch:
        self.get_batch(batch_id)  # catch up first: the cancel moment comes after that work
        now = self.state.now()  # one moment decides both whether it has ended and when it is cancelled
        batch = self.get_batch(batch_id, now)
        if batch.run.timeline.cancelled_at is not None:
            return batch
        if batch.run.ended:
            raise _invalid(f"Message batch {batch_id!r} has already ended and cannot be canceled.")
        batch.run.timeline = batch.run.timeline.cancel(now)
        self.advance(batch, now)
        return batch

    def delete_batch(self, batch_id: str) -> None:
        batch = self.get_batch(batch_id)
        if batch.status != "ended":
            raise _invalid(
                f"Message batch {batch_id!r} is still processing; cancel it and wait until it ends first."
            )
        del self.batches[batch_id]

    def results(self, batch_id: str) -> bytes:
        batch = self.get_batch(batch_id)
        if batch.status != "ended" or batch.results_jsonl is None:
            raise _invalid(f"Message batch {batch_id!r} has not ended yet; results are not available.")
        return batch.results_jsonl

    # ------------------------------------------------------------------------------ lifecycle
    def advance(self, batch: AnthropicBatch, now: float) -> None:
        """Bring ``batch`` to the status and progress it has at ``now``."""
        if batch.run.advance(now, self._answerer(batch), self.stats):
            self._end(batch)

    @staticmethod
    def _answerer(batch: AnthropicBatch) -> RowAnswerer[AnthropicRow, bytes]:
        def answer(row: AnthropicRow, index: int) -> tuple[bool, bytes]:
            result = message_result(row.params, seed=f"{batch.id}\x1f{row.custom_id}", cache=row.cache)
            return result["type"] == "succeeded", _line(row.custom_id, result)

        def inject(row: AnthropicRow, index: int, code: str) -> bytes:
            message = f"Emulated failure '{code}' injected by the fault plan."
            return _line(row.custom_id, errored_result(code, message))

        return RowAnswerer(label=lambda row: row.custom_id, answer=answer, inject=inject)

    def _end(self, batch: AnthropicBatch) -> None:
        """Publish the results: unanswered rows become "canceled"/"expired" results.

        Counts the delivered successful answers; the fault plan may break some lines.
        """
        run = batch.run
        lines = run.progress.answers
        unanswered = UNANSWERED.get(run.now.phase)
        leftover = run.unanswered() if unanswered is not None else []
        lines.extend(Answer(False, row.custom_id, _line(row.custom_id, {"type": unanswered})) for row in leftover)
        if unanswered == "canceled":
            batch.canceled = len(leftover)
        elif unanswered == "expired":
            batch.expired = len(leftover)
        output = Delivery(PROVIDER, self.state.fault_plan, self.stats).deliver_lines(lines, run.faults)
        batch.results_jsonl = b"".join(output)
        run.release()
        log.info(
            "anthropic batch %s ended: %d succeeded, %d errored, %d canceled, %d expired",
            batch.id,
            run.progress.succeeded,
            run.progress.failed,
            batch.canceled,
            batch.expired,
        )


def _line(custom_id: str, result: Mapping[str, Any]) -> bytes:
    return jsonl_line({"custom_id": custom_id, "result": result})
