"""Files and batches of the emulated Gemini Developer API: uploads, create checks and lifecycle.

A batch is created from inline requests (``inputConfig.requests.requests[]``, each
``{"request", "metadata"}``) or from an uploaded JSONL file (``inputConfig.fileName``, lines
``{"key", "request"}``). It is ``BATCH_STATE_PENDING`` for ``validating_seconds``, then
``BATCH_STATE_RUNNING`` while it answers ``requests_per_second`` requests per second, then
``BATCH_STATE_SUCCEEDED`` ``finalizing_seconds`` after the last answer. Rows are answered in a
fixed order that is NOT the input order (sorted by a hash of the row), so inline responses and
output lines come back shuffled, as python-genai#1909 reports of the real service: clients must
join on ``metadata``/``key``.

Choices where the real service is silent or unconfirmed:

* A row that fails (prompt marker, no ``contents``) carries ``error`` (a ``google.rpc.Status``
  with a numeric gRPC code) instead of ``response``; the batch still SUCCEEDS, with
  ``batchStats.failedRequestCount`` counting such rows (python-genai#2693).
* An input file line that is not a JSON object holding a ``request`` object fails the whole batch
  after the pending phase (``BATCH_STATE_FAILED``, the operation's ``error`` names the line).
  A bad inline request is a 400 at creation and creates nothing.
* The create body may not exceed 20 MiB (the documented inline limit), else 400.
* ``batchStats`` counts (int64, so JSON strings) move while the batch runs.
* A cancel stops answering at once; the batch is RUNNING for ``cancelling_seconds`` (also when
  cancelled while PENDING), then ends CANCELLED with the rows answered before the cancel in its
  output. Cancelling a cancelled
  batch is a no-op; cancelling a batch that ended otherwise is a 400 (FAILED_PRECONDITION).
* With ``expire_after_seconds`` a batch with rows left to answer then ends EXPIRED with no output
  at all (the one expiry rule of :mod:`.lifecycle`).
* The finished batch's output sits in ``metadata.output`` (where google-genai reads it); the
  operation carries ``done: true`` and, on failure or cancellation, ``error``.
* Listing omits ``inlinedResponses`` (a page of large batches would be huge); get returns them.
* :attr:`GeminiStore.inline_metadata` False drops ``metadata`` from inline responses, as
  python-genai#2008 reports of the real service (set through ``POST /_emulator/gemini/quirks``).
* Only generated files (batch outputs) can be downloaded, as the Files API documents.

The fault plan (:mod:`.faults`) applies as to the other providers: chosen rows fail with the plan's
code (as the prompt marker does), a batch can expire part-way (EXPIRED, no output), run slower, and
have output FILE lines broken (inline responses are one JSON document and are never broken).
``succeeded_by_custom_id`` counts the successful answers a SUCCEEDED or CANCELLED batch delivers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import model
from .faults import break_line
from .gemini_answers import answer, grpc_code, status
from .gemini_answers import field as get_field
from .gemini_files import PROVIDER, GeminiError, GeminiFiles, status_name
from .lifecycle import Phase, Timeline
from .progress import BatchRun, Delivery, RowAnswerer
from .state import EmulatorState, gc_paused
from .wire import rfc3339

log = logging.getLogger(__name__)

MIB = 1024 * 1024
MAX_INLINE_BODY_BYTES = 20 * MIB
"""The documented cap on a create call with inline requests."""
EXPIRY_SECONDS = 48 * 3600
"""A batch not done 48 hours after creation expires."""
STATES: dict[Phase, str] = {
    Phase.VALIDATING: "BATCH_STATE_PENDING", Phase.IN_PROGRESS: "BATCH_STATE_RUNNING",
    Phase.FINALIZING: "BATCH_STATE_RUNNING", Phase.CANCELLING: "BATCH_STATE_RUNNING",
    Phase.COMPLETED: "BATCH_STATE_SUCCEEDED", Phase.FAILED: "BATCH_STATE_FAILED",
    Phase.CANCELLED: "BATCH_STATE_CANCELLED", Phase.EXPIRED: "BATCH_STATE_EXPIRED",
}
"""The batch state for each phase (there is no cancelling state: a cancelled batch runs on until it ends)."""
TERMINAL = frozenset(STATES[phase] for phase in Phase if phase.ended)
@dataclass
class GeminiRow:
    """One request of a batch: ``key`` (file lines) or ``metadata`` (inline) identify it."""

    label: str
    request: Any
    key: str | None = None
    metadata: Any = None


@dataclass
class GeminiBatch:
    """One batch (a long-running operation) and its progress."""

    id: str
    display_name: str
    model: str
    created: float
    sequence: int
    inline: bool
    errors: list[dict[str, Any]]
    expires: float
    run: BatchRun[GeminiRow, Any]
    """Answers are inline response objects or output file lines."""
    updated: float = 0.0
    """``updateTime`` when last brought up to date (0: the creation)."""
    output: dict[str, Any] | None = None

    @property
    def state(self) -> str:
        return STATES[self.run.now.phase]

    @property
    def name(self) -> str:
        return f"batches/{self.id}"

    def to_json(self, version: str, *, with_inline_output: bool = True) -> dict[str, Any]:
        """The batch as the long-running operation that ``batches.get`` returns."""
        progress, total, ended_at = self.run.progress, self.run.timeline.total or 0, self.run.now.ended_at
        pending = 0 if self.state in TERMINAL else total - progress.processed
        metadata: dict[str, Any] = {
            "@type": f"type.googleapis.com/google.ai.generativelanguage.{version}.GenerateContentBatch",
            "model": self.model,
            "displayName": self.display_name,
            "name": self.name,
            "createTime": rfc3339(self.created),
            "updateTime": rfc3339(self.updated or self.created),
            "batchStats": {
                "requestCount": str(total),
                "successfulRequestCount": str(progress.succeeded),
                "failedRequestCount": str(progress.failed),
                "pendingRequestCount": str(pending),
            },
            "state": self.state,
        }
        if ended_at is not None:
            metadata["endTime"] = rfc3339(ended_at)
        if self.output is not None and (with_inline_output or "inlinedResponses" not in self.output):
            metadata["output"] = self.output
        operation: dict[str, Any] = {"name": self.name, "metadata": metadata}
        if self.state in TERMINAL:
            operation["done"] = True
        if self.state == "BATCH_STATE_FAILED" and self.errors:
            operation["error"] = self.errors[0]
        elif self.state == "BATCH_STATE_CANCELLED":
            operation["error"] = status(1, "The batch was cancelled.")
        elif self.state == "BATCH_STATE_EXPIRED":
            operation["error"] = status(4, "The batch expired before all requests were processed.")
        return operation


def _invalid(message: str) -> GeminiError:
    return GeminiError(400, message)


def _order_key(batch_id: str, index: int, row: GeminiRow) -> str:
    return model.short_id(batch_id, row.label, str(index))


class GeminiStore(GeminiFiles):
    """All files, upload sessions and batches of the emulated Gemini Developer API.

    Example::

        store = GeminiStore(EmulatorState(EmulatorConfig()))
        batch = store.create_batch("models/gemini-2.5-flash", {"batch": {"displayName": "t", "inputConfig": {
            "requests": {"requests": [{"request": {"contents": [...]}, "metadata": {"key": "k1"}}]}}}})
        store.get_batch(batch.id).to_json("v1beta")  # brought up to date with the clock
    """

    def __init__(self, state: EmulatorState) -> None:
        super().__init__(state)
        self.batches: dict[str, GeminiBatch] = {}
        self.inline_metadata = True
        """False reproduces python-genai#2008: inline responses come back without ``metadata``."""

    # -------------------------------------------------------------------------------- batches
    def create_batch(self, model_path: str, payload: Any) -> GeminiBatch:
        """Validate a ``batchGenerateContent`` call (400 on bad arguments) and register the batch."""
        batch_doc = get_field(payload, "batch") if isinstance(payload, Mapping) else None
        if not isinstance(batch_doc, Mapping):
            raise _invalid("Invalid JSON payload: 'batch' is required.")
        config = get_field(batch_doc, "inputConfig")
        if not isinstance(config, Mapping):
            raise _invalid("* BatchGenerateContentRequest.batch.input_config: input_config is required")
        inline = get_field(config, "requests")
        file_name = get_field(config, "fileName")
        if (inline is None) == (file_name is None):
            raise _invalid("* batch.input_config: exactly one of requests or file_name must be set")
        errors: list[dict[str, Any]] = []
        with gc_paused():
            if inline is not None:
                rows = self._inline_rows(inline)
            else:
                rows = self._file_rows(str(file_name), errors)
        now, batch_id = self.state.now(), self.state.new_id("", 24)
        expire_after = self.state.config.expire_after_seconds
        faults = None if errors else self.state.fault_plan.for_batch(PROVIDER, (row.label for row in rows))
        ordered = [row for _, row in sorted(enumerate(rows), key=lambda ir: _order_key(batch_id, *ir))]
        timeline = Timeline.for_batch(now, self.state.config, total=len(rows), faults=faults, invalid=bool(errors))
        batch = GeminiBatch(
            id=batch_id,
            display_name=str(get_field(batch_doc, "displayName") or ""),
            model=model_path,
            created=now,
            sequence=self.state.next_sequence(),
            inline=inline is not None,
            errors=errors,
            expires=now + (expire_after if expire_after is not None else EXPIRY_SECONDS),
            run=BatchRun(timeline, ordered, faults),
        )
        self.batches[batch.id] = batch
        stats = self.stats
        stats.batches_created += 1
        stats.batches.append(batch.name)
        stats.requests_by_custom_id.update(row.label for row in rows)
        if errors:
            stats.batches_failed_validation += 1
        else:
            stats.accepted_requests_by_custom_id.update(row.label for row in rows)
        log.info("gemini batch %s created: %d requests (%s), %d validation errors", batch.name, len(rows),
                 "inline" if batch.inline else "file", len(errors))
        return batch

    @staticmethod
    def _inline_rows(inline: Any) -> list[GeminiRow]:
        items = get_field(inline, "requests") if isinstance(inline, Mapping) else None
        if not isinstance(items, list) or not items:
            raise _invalid("* batch.input_config.requests.requests: at least one request is required")
        rows: list[GeminiRow] = []
        for index, item in enumerate(items):
            request = get_field(item, "request") if isinstance(item, Mapping) else None
            if not isinstance(request, Mapping):
                raise _invalid(f"* batch.input_config.requests.requests[{index}].request: request is required")
            metadata = item.get("metadata")
            key = metadata.get("key") if isinstance(metadata, Mapping) else None
            label = str(key) if key is not None else f"#{index}"
            rows.append(GeminiRow(label, request, metadata=metadata))
        return rows

    def _file_rows(self, file_name: str, errors: list[dict[str, Any]]) -> list[GeminiRow]:
        source = self.files.get(file_name.removeprefix("files/"))
        if source is None:
            raise GeminiError(404, f"Input file {file_name} was not found.")
        rows: list[GeminiRow] = []
        for number, raw in enumerate(source.data.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                line = None
            request = get_field(line, "request") if isinstance(line, Mapping) else None
            if not isinstance(request, Mapping):
                if len(errors) < 1:
                    errors.append(status(3, f"Invalid input file {file_name}, line {number}: expected a JSON "
                                            f"object with a 'request' object."))
                continue
            key = line.get("key")
            label = str(key) if key is not None else f"#{number}"
            rows.append(GeminiRow(label, request, key=None if key is None else str(key)))
        if not rows and not errors:
            errors.append(status(3, f"Input file {file_name} holds no requests."))
        return rows

    def get_batch(self, batch_id: str, now: float | None = None) -> GeminiBatch:
        """The batch brought up to ``now`` (default: the clock)."""
        batch = self.batches.get(batch_id.removeprefix("batches/"))
        if batch is None:
            raise GeminiError(404, f"Batch batches/{batch_id} not found.")
        self.advance(batch, self.state.now() if now is None else now)
        return batch

    def list_batches(self, page_size: int, offset: int) -> tuple[list[GeminiBatch], int | None]:
        """A page of batches, newest first, and the offset of the next page."""
        ordered = sorted(self.batches.values(), key=lambda b: b.sequence, reverse=True)
        page = ordered[offset: offset + page_size]
        now = self.state.now()
        for batch in page:
            self.advance(batch, now)
        return page, offset + page_size if len(ordered) > offset + page_size else None

    def cancel_batch(self, batch_id: str) -> None:
        self.get_batch(batch_id)  # catch up first: the cancel moment comes after that work
        now = self.state.now()  # one moment decides both whether it has ended and when it is cancelled
        batch = self.get_batch(batch_id, now)
        if batch.state == "BATCH_STATE_CANCELLED" or batch.run.timeline.cancelled_at is not None:
            return
        if batch.state in TERMINAL:
            raise GeminiError(400, f"Batch {batch.name} has already ended ({batch.state}) and cannot be "
                                   f"cancelled.", "FAILED_PRECONDITION")
        batch.run.timeline = batch.run.timeline.cancel(now)
        self.advance(batch, now)

    def delete_batch(self, batch_id: str) -> None:
        batch = self.get_batch(batch_id)
        del self.batches[batch.id]

    # ------------------------------------------------------------------------------ lifecycle
    def advance(self, batch: GeminiBatch, now: float) -> None:
        """Bring ``batch`` to the state and progress it has at ``now``."""
        ended = batch.run.advance(now, self._answerer(batch), self.stats)
        batch.updated = batch.run.timeline.last_change(now)
        if ended:
            self._finish(batch)

    def _answerer(self, batch: GeminiBatch) -> RowAnswerer[GeminiRow, Any]:
        def respond(row: GeminiRow, index: int) -> tuple[bool, Any]:
            kind, body = answer(row.request, model_name=batch.model, seed=f"{batch.id}\x1f{row.label}")
            return kind == "response", self._output_item(batch, row, kind, body)

        def inject(row: GeminiRow, index: int, code: str) -> Any:
            body = status(grpc_code(code), f"Emulated failure '{code}' injected by the fault plan.")
            return self._output_item(batch, row, "error", body)

        return RowAnswerer(label=lambda row: row.label, answer=respond, inject=inject)

    def _output_item(self, batch: GeminiBatch, row: GeminiRow, kind: str, body: dict[str, Any]) -> Any:
        if batch.inline:
            item: dict[str, Any] = {kind: body}
            if row.metadata is not None and self.inline_metadata:
                item["metadata"] = row.metadata
            return item
        line: dict[str, Any] = {kind: body} if row.key is None else {"key": row.key, kind: body}
        return (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")

    def _finish(self, batch: GeminiBatch) -> None:
        """Publish the output of the answered rows of a batch that SUCCEEDED or was CANCELLED."""
        run = batch.run
        if run.now.phase in (Phase.COMPLETED, Phase.CANCELLED):
            delivery = Delivery(PROVIDER, self.state.fault_plan, self.stats)
            items = delivery.deliver(run.progress.answers, run.faults, None if batch.inline else break_line)
            if batch.inline:
                batch.output = {"inlinedResponses": {"inlinedResponses": items}}
            else:
                out = self.add_file(b"".join(items), f"batch-{batch.id}-output", "application/jsonl", "GENERATED")
                batch.output = {"responsesFile": out.name}
        run.release()
        log.info("gemini batch %s %s: %d succeeded, %d failed of %d", batch.name, batch.state,
                 run.progress.succeeded, run.progress.failed, run.timeline.total or 0)


__all__ = ["MAX_INLINE_BODY_BYTES", "STATES", "TERMINAL", "GeminiBatch", "GeminiError", "GeminiStore", "status_name"]
