"""Files and batches of the emulated OpenAI Batch API: storage, create checks and lifecycle.

A batch's input file is parsed and validated once, at creation (:mod:`.openai_input`). The
batch then moves through ``validating -> in_progress -> finalizing -> completed`` (or ``failed``
after validating when the file is invalid) as time passes; every read brings it up to date
(:meth:`OpenAIBatches.advance`). Requests are answered in a fixed order that is NOT the input
order (sorted by a hash of their custom_id), at the configured pace, so output files never follow
input order.

Choices where the real service is silent or unconfirmed:

* Validation errors (batch ``failed``, ``errors.data[]``) use these codes: ``empty_file``,
  ``file_too_large``, ``too_many_requests`` (more lines than ``max_requests_per_batch``),
  ``too_many_embedding_inputs``, ``invalid_json_line``, ``missing_required_parameter`` (no
  custom_id/method/url/body; ``param`` names it), ``invalid_value`` (custom_id not a string,
  body not an object), ``invalid_method`` (not POST),
  ``invalid_url`` (not the batch endpoint), ``duplicate_custom_id``, ``mismatched_model``
  (more than one model in the file) and ``token_limit_exceeded`` (``enqueued_token_limit``).
  At most 100 errors are reported; ``line`` is 1-based.
* A body the endpoint would reject (no model, no messages...) is a per-row 400, not a batch error.
* Successful rows go to the output file, failed rows (status >= 400) to the error file (or to the
  output file with ``errors_in_output_file``). A file is only created when it has lines.
* A cancelled batch keeps the rows answered before the cancel; unanswered rows appear nowhere.
* An expired batch (``expire_after_seconds``) keeps answered rows; unanswered rows go to the error
  file as ``{"custom_id", "response": null, "error": {"code": "batch_expired", ...}}``.
  ``request_counts.failed`` counts answered failures only.
* Cancelling a batch that is already cancelling or cancelled returns it unchanged; cancelling a
  completed, failed or expired batch is a 400.

The fault plan (:mod:`.faults`) can fail chosen rows, expire a batch part-way, slow it down, break
output lines and lower the enqueued token limit at runtime.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import model
from .faults import BatchFaults, break_line
from .openai_answers import Answerer, RowContext, answerer_for, injected_error
from .openai_input import (
    ALLOWED_ENDPOINTS,
    BatchRow,
    estimate_prompt_tokens,
    normalize_endpoint,
    parse_input_file,
)
from .state import ApiError, EmulatorState, Pace, gc_paused

log = logging.getLogger(__name__)

PROVIDER = "openai"
COMPLETION_WINDOW_SECONDS = 24 * 3600
ACTIVE_STATUSES = frozenset({"validating", "in_progress", "finalizing", "cancelling"})


class OpenAIError(ApiError):
    """An OpenAI-shaped error answer."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(status, message)
        self.type_ = type_
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {
            "error": {"message": self.message, "type": self.type_, "param": self.param, "code": self.code}
        }


@dataclass
class StoredFile:
    """An uploaded input file or a produced output/error file."""

    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int
    sequence: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
            "expires_at": None,
        }


@dataclass
class OpenAIBatch:
    """One batch and its progress."""

    id: str
    endpoint: str
    route: str
    input_file_id: str
    completion_window: str
    metadata: dict[str, str] | None
    created: float
    sequence: int
    model: str | None
    rows: list[BatchRow]
    errors: list[dict[str, Any]]
    expires: float
    rate: float
    """Requests answered per second once in progress."""
    faults: BatchFaults | None = None
    """What the fault plan in force at creation does to this batch."""
    prompt_tokens: int | None = None
    """Estimated prompt tokens (for the enqueued token limit), computed on first need."""
    status: str = "validating"
    pace: Pace | None = None
    processed: int = 0
    answers: list[tuple[bool, str, bytes]] = field(default_factory=list)
    """(succeeded, custom_id, output line) of the answered rows, in processing order."""
    total: int = 0
    completed: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    in_progress_at: float | None = None
    finalizing_at: float | None = None
    completed_at: float | None = None
    failed_at: float | None = None
    expired_at: float | None = None
    cancelling_at: float | None = None
    cancelled_at: float | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        def stamp(value: float | None) -> int | None:
            return None if value is None else int(value)

        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": self.model,
            "errors": {"object": "list", "data": list(self.errors)}
            if self.errors and self.status == "failed"
            else None,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": int(self.created),
            "in_progress_at": stamp(self.in_progress_at),
            "expires_at": int(self.expires),
            "finalizing_at": stamp(self.finalizing_at),
            "completed_at": stamp(self.completed_at),
            "failed_at": stamp(self.failed_at),
            "expired_at": stamp(self.expired_at),
            "cancelling_at": stamp(self.cancelling_at),
            "cancelled_at": stamp(self.cancelled_at),
            "request_counts": {"total": self.total, "completed": self.completed, "failed": self.failed},
            "usage": {
                "input_tokens": self.input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": self.output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": self.input_tokens + self.output_tokens,
            },
            "metadata": self.metadata,
        }


def _required_str(payload: Mapping[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise OpenAIError(
            400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
        )
    return value


def _invalid_value(name: str, reason: str) -> OpenAIError:
    return OpenAIError(400, f"Invalid value for '{name}': {reason}", param=name, code="invalid_value")


def validate_metadata(metadata: Any) -> dict[str, str] | None:
    """OpenAI's metadata rules: at most 16 string pairs, keys <= 64 chars, values <= 512 chars."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise OpenAIError(400, "Invalid type for 'metadata': expected an object.", param="metadata")
    if len(metadata) > 16:
        raise OpenAIError(400, "Invalid 'metadata': too many properties (max 16).", param="metadata")
    for key, value in metadata.items():
        if not isinstance(key, str) or len(key) > 64:
            raise OpenAIError(
                400, "Invalid 'metadata': keys must be strings of at most 64 characters.", param="metadata"
            )
        if not isinstance(value, str) or len(value) > 512:
            raise OpenAIError(
                400,
                f"Invalid 'metadata.{key}': values must be strings of at most 512 characters.",
                param="metadata",
            )
    return dict(metadata)


class OpenAIBatches:
    """All files and batches of the emulated OpenAI API."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, OpenAIBatch] = {}
        self.stats = state.stats_for(PROVIDER)

    # ---------------------------------------------------------------------------------- files
    def add_file(self, data: bytes, filename: str, purpose: str, *, uploaded: bool) -> StoredFile:
        """Store a file; ``uploaded`` counts it in the statistics."""
        stored = StoredFile(
            id=self.state.new_id("file-"),
            filename=filename,
            purpose=purpose,
            data=data,
            created_at=int(self.state.now()),
            sequence=self.state.next_sequence(),
        )
        self.files[stored.id] = stored
        if uploaded:
            self.stats.files_uploaded += 1
        return stored

    def get_file(self, file_id: str) -> StoredFile:
        stored = self.files.get(file_id)
        if stored is None:
            raise OpenAIError(404, f"No such File object: {file_id}", param="id")
        return stored

    def delete_file(self, file_id: str) -> None:
        self.get_file(file_id)
        del self.files[file_id]

    # -------------------------------------------------------------------------------- batches
    def create_batch(self, payload: Mapping[str, Any]) -> OpenAIBatch:
        """Validate a create call, parse its input file once and register the batch.

        Bad arguments are an immediate 400; problems inside the input file fail the batch after
        ``validating_seconds``, as the real service does.
        """
        input_file_id = _required_str(payload, "input_file_id")
        endpoint = _required_str(payload, "endpoint")
        route = normalize_endpoint(endpoint)
        if route not in ALLOWED_ENDPOINTS:
            raise _invalid_value("endpoint", f"{endpoint!r} is not supported for batches.")
        if answerer_for(route, 1) is None:
            raise _invalid_value("endpoint", f"the emulator does not implement batches for {endpoint}.")
        window = payload.get("completion_window")
        if window != "24h":
            raise _invalid_value("completion_window", "only '24h' is supported.")
        metadata = validate_metadata(payload.get("metadata"))
        source = self.files.get(input_file_id)
        if source is None:
            raise _invalid_value("input_file_id", f"no file with id {input_file_id!r}.")
        if source.purpose != "batch":
            raise _invalid_value(
                "input_file_id", f"file {input_file_id!r} was not uploaded with purpose 'batch'."
            )

        with gc_paused():
            parsed = parse_input_file(source.data, route, self.state.config)
        now = self.state.now()
        expire_after = self.state.config.expire_after_seconds
        batch = OpenAIBatch(
            id=self.state.new_id("batch_"),
            endpoint=endpoint,
            route=route,
            input_file_id=input_file_id,
            completion_window=window,
            metadata=metadata,
            created=now,
            sequence=self.state.next_sequence(),
            model=parsed.model,
            rows=parsed.rows,
            errors=parsed.errors,
            expires=now + (expire_after if expire_after is not None else COMPLETION_WINDOW_SECONDS),
            rate=self.state.config.requests_per_second,
        )
        if not batch.errors:
            self._check_token_limit(batch, now)
        self.batches[batch.id] = batch
        self.stats.batches_created += 1
        self.stats.batches.append(batch.id)
        self.stats.requests_by_custom_id.update(parsed.custom_ids)
        if batch.errors:
            self.stats.batches_failed_validation += 1
        else:
            self.stats.accepted_requests_by_custom_id.update(row.custom_id for row in batch.rows)
            batch.faults = self.state.fault_plan.for_batch(PROVIDER, (row.custom_id for row in batch.rows))
            if batch.faults is not None:
                batch.rate = batch.faults.pace(batch.rate)
        log.info(
            "openai batch %s created: %d requests, %d validation errors",
            batch.id,
            len(batch.rows),
            len(batch.errors),
        )
        return batch

    @staticmethod
    def _prompt_tokens(batch: OpenAIBatch) -> int:
        """The batch's estimated prompt tokens (its rows are kept while it is unfinished)."""
        if batch.prompt_tokens is None:
            batch.prompt_tokens = sum(estimate_prompt_tokens(batch.route, row.body) for row in batch.rows)
        return batch.prompt_tokens

    def _check_token_limit(self, batch: OpenAIBatch, now: float) -> None:
        limit = self.state.fault_plan.enqueued_token_limit(self.state.config.enqueued_token_limit)
        if limit is None:
            return
        enqueued = 0
        for other in self.batches.values():
            self.advance(other, now)
            if other.model == batch.model and other.status in ACTIVE_STATUSES and not other.errors:
                enqueued += self._prompt_tokens(other)
        if enqueued + self._prompt_tokens(batch) > limit:
            batch.errors.append(
                {
                    "code": "token_limit_exceeded",
                    "message": f"Enqueued token limit reached for {batch.model} in organization "
                    f"org-emulator. Limit: {limit} enqueued tokens. Please try again once some "
                    "in_progress batches have been completed.",
                    "param": None,
                    "line": None,
                }
            )

    def get_batch(self, batch_id: str) -> OpenAIBatch:
        batch = self.batches.get(batch_id)
        if batch is None:
            raise OpenAIError(404, f"No batch found with id '{batch_id}'.")
        self.advance(batch, self.state.now())
        return batch

    def list_batches(self, after: str | None, limit: int) -> tuple[list[OpenAIBatch], bool]:
        """A page of batches, newest first, starting after the batch ``after``."""
        ordered = sorted(self.batches.values(), key=lambda b: b.sequence, reverse=True)
        if after:
            position = next((i for i, b in enumerate(ordered) if b.id == after), None)
            if position is None:
                raise OpenAIError(404, f"No batch found with id '{after}'.", param="after")
            ordered = ordered[position + 1 :]
        page = ordered[:limit]
        now = self.state.now()
        for batch in page:
            self.advance(batch, now)
        return page, len(ordered) > limit

    def cancel_batch(self, batch_id: str) -> OpenAIBatch:
        batch = self.get_batch(batch_id)
        now = self.state.now()
        if batch.status in ("cancelling", "cancelled"):
            return batch
        if batch.status not in ("validating", "in_progress", "finalizing"):
            raise OpenAIError(400, f"Cannot cancel a batch with status '{batch.status}'.")
        if batch.pace is not None:
            done = batch.pace.done_at(now)
            planned = batch.faults.expire_after(batch.total) if batch.faults is not None else None
            self._process(batch, done if planned is None else min(done, planned))
        batch.status = "cancelling"
        batch.cancelling_at = now
        self.advance(batch, now)
        return batch

    # ------------------------------------------------------------------------------ lifecycle
    def advance(self, batch: OpenAIBatch, now: float) -> None:
        """Bring ``batch`` to the status and progress it has at ``now``."""
        config = self.state.config
        expire_at = batch.expires if config.expire_after_seconds is not None else None
        if batch.status == "validating":
            validated_at = batch.created + config.validating_seconds
            if expire_at is not None and expire_at <= validated_at and now >= expire_at:
                self._finish(batch, "expired", expire_at)
                return
            if now < validated_at:
                return
            if batch.errors:
                batch.status, batch.failed_at = "failed", validated_at
                batch.rows = []
                log.info("openai batch %s failed validation", batch.id)
                return
            batch.status, batch.in_progress_at = "in_progress", validated_at
            batch.total = len(batch.rows)
            batch.pace = Pace(validated_at, batch.rate, batch.total)
        if batch.status == "in_progress":
            assert batch.pace is not None
            planned = batch.faults.expire_after(batch.total) if batch.faults is not None else None
            if planned is not None:  # the fault plan expires it once `planned` rows are answered
                planned_at = batch.pace.start + planned / batch.pace.rate
                if (expire_at is None or planned_at <= expire_at) and now >= planned_at:
                    self._process(batch, planned)
                    self._finish(batch, "expired", planned_at)
                    return
            if expire_at is not None and expire_at < batch.pace.end and now >= expire_at:
                self._process(batch, batch.pace.done_at(expire_at))
                self._finish(batch, "expired", expire_at)
                return
            done = batch.pace.done_at(now)
            self._process(batch, done if planned is None else min(done, planned))
            if now < batch.pace.end:
                return
            batch.status, batch.finalizing_at = "finalizing", batch.pace.end
        if batch.status == "finalizing":
            assert batch.finalizing_at is not None
            done_at = batch.finalizing_at + config.finalizing_seconds
            if now >= done_at:
                self._finish(batch, "completed", done_at)
        if batch.status == "cancelling":
            assert batch.cancelling_at is not None
            done_at = batch.cancelling_at + config.cancelling_seconds
            if now >= done_at:
                self._finish(batch, "cancelled", done_at)

    def _process(self, batch: OpenAIBatch, upto: int) -> None:
        """Answer the rows up to ``upto`` (in processing order) that are not answered yet.

        Each answer is serialized to its output line at once: keeping bytes rather than nested
        dicts keeps memory and garbage-collection work low on 50,000-row batches.
        """
        if upto <= batch.processed:
            return
        answer = answerer_for(batch.route, self.state.config.embedding_dimensions)
        assert answer is not None
        with gc_paused():
            for index in range(batch.processed, upto):
                batch.answers.append(self._answer_row(batch, index, answer))
        batch.processed = upto

    def _answer_row(self, batch: OpenAIBatch, index: int, answer: Answerer) -> tuple[bool, str, bytes]:
        """Answer one row, count it, and return (succeeded, custom_id, output line)."""
        assert batch.pace is not None
        row = batch.rows[index]
        injected = batch.faults.row_error(row.custom_id) if batch.faults is not None else None
        if injected is not None:
            outcome = injected_error(injected)
            self.stats.row_errors_injected += 1
        else:
            answered_at = int(batch.pace.start + (index + 1) / batch.pace.rate)
            context = RowContext(seed=f"{batch.id}\x1f{row.custom_id}", created=answered_at)
            outcome = answer(row.body, context)
        if outcome.ok:
            batch.completed += 1
            batch.input_tokens += outcome.input_tokens
            batch.output_tokens += outcome.output_tokens
        else:
            batch.failed += 1
        line = {
            "id": "batch_req_" + model.short_id("req", batch.id, row.custom_id, length=32),
            "custom_id": row.custom_id,
            "response": {
                "status_code": outcome.status_code,
                "request_id": "req_" + model.short_id("rid", batch.id, row.custom_id, length=32),
                "body": outcome.body,
            },
            "error": None,
        }
        return outcome.ok, row.custom_id, _jsonl(line)

    def _finish(self, batch: OpenAIBatch, status: str, moment: float) -> None:
        """Enter a terminal status, write the output and error files and count delivered answers."""
        batch.status = status
        setattr(batch, f"{status}_at", moment)
        to_output_file = self.state.config.errors_in_output_file
        output: list[bytes] = []
        errors: list[bytes] = []
        delivered: list[str] = []
        for ok, custom_id, line in batch.answers:
            if not (ok or to_output_file):
                errors.append(line)
                continue
            if batch.faults is not None and self.state.fault_plan.breaks_line(
                PROVIDER, custom_id, batch.faults.plan
            ):
                line = break_line(line)
                self.stats.malformed_lines += 1
            elif ok:
                delivered.append(custom_id)
            output.append(line)
        self.stats.succeeded_by_custom_id.update(delivered)
        if status == "expired":
            for row in batch.rows[batch.processed :]:
                expired = {
                    "id": "batch_req_" + model.short_id("req", batch.id, row.custom_id, length=32),
                    "custom_id": row.custom_id,
                    "response": None,
                    "error": {
                        "code": "batch_expired",
                        "message": "This request could not be executed before the completion window expired.",
                    },
                }
                errors.append(_jsonl(expired))
        if output:
            batch.output_file_id = self.add_file(
                b"".join(output), f"batch_{batch.id}_output.jsonl", "batch_output", uploaded=False
            ).id
        if errors:
            batch.error_file_id = self.add_file(
                b"".join(errors), f"batch_{batch.id}_error.jsonl", "batch_output", uploaded=False
            ).id
        batch.rows, batch.answers = [], []
        log.info(
            "openai batch %s %s: %d completed, %d failed", batch.id, status, batch.completed, batch.failed
        )


def _jsonl(value: Mapping[str, Any]) -> bytes:
    return (json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
