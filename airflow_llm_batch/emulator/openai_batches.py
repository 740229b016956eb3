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

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import model
from .lifecycle import Phase, Timeline
from .openai_answers import Answerer, RowContext, RowOutcome, answerer_for, injected_error
from .openai_input import (
    ALLOWED_ENDPOINTS,
    BatchRow,
    estimate_prompt_tokens,
    normalize_endpoint,
    parse_input_file,
)
from .openai_objects import OpenAIError, StoredFile, invalid_value, required_str, validate_metadata
from .progress import BatchRun, Delivery, RowAnswerer
from .state import EmulatorState, gc_paused
from .wire import jsonl_line

log = logging.getLogger(__name__)

PROVIDER = "openai"
COMPLETION_WINDOW_SECONDS = 24 * 3600


STATUS: dict[Phase, str] = {phase: phase.value for phase in Phase}
"""OpenAI's status words are the neutral phase names."""


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
    errors: list[dict[str, Any]]
    expires: float
    run: BatchRun[BatchRow, bytes]
    prompt_tokens: int | None = None
    """Estimated prompt tokens (for the enqueued token limit), computed on first need."""
    input_tokens: int = 0
    output_tokens: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None

    @property
    def status(self) -> str:
        return STATUS[self.run.now.phase]

    def _stamps(self) -> dict[str, int | None]:
        def stamp(value: float | None) -> int | None:
            return None if value is None else int(value)

        now = self.run.now
        phase, ended_at = now.phase, stamp(now.ended_at)
        return {
            "in_progress_at": stamp(now.started_at),
            "expires_at": int(self.expires),
            "finalizing_at": stamp(now.finalizing_at),
            "completed_at": ended_at if phase is Phase.COMPLETED else None,
            "failed_at": ended_at if phase is Phase.FAILED else None,
            "expired_at": ended_at if phase is Phase.EXPIRED else None,
            "cancelling_at": stamp(self.run.timeline.cancelled_at),
            "cancelled_at": ended_at if phase is Phase.CANCELLED else None,
        }

    def to_json(self) -> dict[str, Any]:
        progress, failed = self.run.progress, self.status == "failed"
        total = (self.run.timeline.total or 0) if self.run.now.started_at is not None else 0
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": self.model,
            "errors": {"object": "list", "data": list(self.errors)} if self.errors and failed else None,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": int(self.created),
            **self._stamps(),
            "request_counts": {"total": total, "completed": progress.succeeded, "failed": progress.failed},
            "usage": {
                "input_tokens": self.input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": self.output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": self.input_tokens + self.output_tokens,
            },
            "metadata": self.metadata,
        }


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
        input_file_id = required_str(payload, "input_file_id")
        endpoint = required_str(payload, "endpoint")
        route = normalize_endpoint(endpoint)
        if route not in ALLOWED_ENDPOINTS:
            raise invalid_value("endpoint", f"{endpoint!r} is not supported for batches.")
        if answerer_for(route, 1) is None:
            raise invalid_value("endpoint", f"the emulator does not implement batches for {endpoint}.")
        window = payload.get("completion_window")
        if window != "24h":
            raise invalid_value("completion_window", "only '24h' is supported.")
        metadata = validate_metadata(payload.get("metadata"))
        source = self._batch_input(input_file_id)
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
            errors=parsed.errors,
            expires=now + (expire_after if expire_after is not None else COMPLETION_WINDOW_SECONDS),
            run=BatchRun(Timeline.for_batch(now, self.state.config, total=len(parsed.rows)), parsed.rows),
        )
        self._register(batch, parsed.custom_ids, now)
        log.info("openai batch %s created: %d requests, %d validation errors", batch.id, len(batch.run.rows),
                 len(batch.errors))
        return batch

    def _batch_input(self, input_file_id: str) -> StoredFile:
        source = self.files.get(input_file_id)
        if source is None:
            raise invalid_value("input_file_id", f"no file with id {input_file_id!r}.")
        if source.purpose != "batch":
            raise invalid_value("input_file_id", f"file {input_file_id!r} was not uploaded with purpose 'batch'.")
        return source

    def _register(self, batch: OpenAIBatch, custom_ids: list[str], now: float) -> None:
        """Check the token limit, store the batch, count it and fix what the fault plan does to it."""
        if not batch.errors:
            self._check_token_limit(batch, now)
        self.batches[batch.id] = batch
        self.stats.batches_created += 1
        self.stats.batches.append(batch.id)
        self.stats.requests_by_custom_id.update(custom_ids)
        run = batch.run
        if batch.errors:
            self.stats.batches_failed_validation += 1
            run.timeline = run.timeline.failed()
            return
        self.stats.accepted_requests_by_custom_id.update(row.custom_id for row in run.rows)
        run.faults = self.state.fault_plan.for_batch(PROVIDER, (row.custom_id for row in run.rows))
        run.timeline = run.timeline.with_rows(len(run.rows), run.faults)

    @staticmethod
    def _prompt_tokens(batch: OpenAIBatch) -> int:
        """The batch's estimated prompt tokens (its rows are kept while it is unfinished)."""
        if batch.prompt_tokens is None:
            batch.prompt_tokens = sum(estimate_prompt_tokens(batch.route, row.body) for row in batch.run.rows)
        return batch.prompt_tokens

    def _check_token_limit(self, batch: OpenAIBatch, now: float) -> None:
        limit = self.state.fault_plan.enqueued_token_limit(self.state.config.enqueued_token_limit)
        if limit is None:
            return
        enqueued = 0
        for other in self.batches.values():
            self.advance(other, now)
            if other.model == batch.model and not other.run.ended and not other.errors:
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

    def get_batch(self, batch_id: str, now: float | None = None) -> OpenAIBatch:
        """The batch brought up to ``now`` (default: the clock)."""
        batch = self.batches.get(batch_id)
        if batch is None:
            raise OpenAIError(404, f"No batch found with id '{batch_id}'.")
        self.advance(batch, self.state.now() if now is None else now)
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
        self.get_batch(batch_id)  # catch up first: the cancel moment comes after that work
        now = self.state.now()  # one moment decides both whether it has ended and when it is cancelled
        batch = self.get_batch(batch_id, now)
        if batch.status in ("cancelling", "cancelled"):
            return batch
        if batch.run.ended:
            raise OpenAIError(400, f"Cannot cancel a batch with status '{batch.status}'.")
        batch.run.timeline = batch.run.timeline.cancel(now)
        self.advance(batch, now)
        return batch

    # ------------------------------------------------------------------------------ lifecycle
    def advance(self, batch: OpenAIBatch, now: float) -> None:
        """Bring ``batch`` to the status and progress it has at ``now``."""
        if batch.run.ended:  # nothing moves any more (run.advance would say so, after the set-up below)
            return
        answer = answerer_for(batch.route, self.state.config.embedding_dimensions)
        assert answer is not None
        answerer = RowAnswerer[BatchRow, bytes](
            label=lambda row: row.custom_id,
            answer=lambda row, index: self._answer_row(batch, row, index, answer),
            inject=lambda row, index, code: _line(batch.id, row.custom_id, injected_error(code)),
        )
        if batch.run.advance(now, answerer, self.stats):
            self._finish(batch)

    @staticmethod
    def _answer_row(batch: OpenAIBatch, row: BatchRow, index: int, answer: Answerer) -> tuple[bool, bytes]:
        """Answer one row: (succeeded, output line).

        Each answer is serialized at once: bytes rather than nested dicts keep memory and
        garbage-collection work low on 50,000-row batches.
        """
        answered_at = int(batch.run.timeline.answered_at(index))
        outcome = answer(row.body, RowContext(seed=f"{batch.id}\x1f{row.custom_id}", created=answered_at))
        if outcome.ok:
            batch.input_tokens += outcome.input_tokens
            batch.output_tokens += outcome.output_tokens
        return outcome.ok, _line(batch.id, row.custom_id, outcome)

    def _finish(self, batch: OpenAIBatch) -> None:
        """Write the output and error files of an ended batch and count the delivered answers."""
        run, to_output_file = batch.run, self.state.config.errors_in_output_file
        kept = [answer for answer in run.progress.answers if answer.ok or to_output_file]
        output = Delivery(PROVIDER, self.state.fault_plan, self.stats).deliver_lines(kept, run.faults)
        errors = [answer.item for answer in run.progress.answers if not (answer.ok or to_output_file)]
        if run.now.phase is Phase.EXPIRED:
            errors.extend(_expired_line(batch.id, row.custom_id) for row in run.unanswered())
        if output:
            batch.output_file_id = self._output_file(batch, output, "output")
        if errors:
            batch.error_file_id = self._output_file(batch, errors, "error")
        run.release()
        log.info("openai batch %s %s: %d completed, %d failed", batch.id, batch.status, run.progress.succeeded,
                 run.progress.failed)

    def _output_file(self, batch: OpenAIBatch, lines: list[bytes], kind: str) -> str:
        name = f"batch_{batch.id}_{kind}.jsonl"
        return self.add_file(b"".join(lines), name, "batch_output", uploaded=False).id


def _line(batch_id: str, custom_id: str, outcome: RowOutcome) -> bytes:
    return jsonl_line({
        "id": "batch_req_" + model.short_id("req", batch_id, custom_id, length=32),
        "custom_id": custom_id,
        "response": {
            "status_code": outcome.status_code,
            "request_id": "req_" + model.short_id("rid", batch_id, custom_id, length=32),
            "body": outcome.body,
        },
        "error": None,
    })


def _expired_line(batch_id: str, custom_id: str) -> bytes:
    return jsonl_line({
        "id": "batch_req_" + model.short_id("req", batch_id, custom_id, length=32),
        "custom_id": custom_id,
        "response": None,
        "error": {
            "code": "batch_expired",
            "message": "This request could not be executed before the completion window expired.",
        },
    })


__all__ = ["PROVIDER", "STATUS", "OpenAIBatch", "OpenAIBatches", "OpenAIError", "StoredFile", "validate_metadata"]
