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
* A cancel stops answering at once; the batch stays RUNNING for ``cancelling_seconds``, then
  ends CANCELLED with the rows answered before the cancel in its output. Cancelling a cancelled
  batch is a no-op; cancelling a batch that ended otherwise is a 400 (FAILED_PRECONDITION).
* With ``expire_after_seconds`` a batch still running then ends EXPIRED with no output at all.
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

import base64
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import model
from .faults import BatchFaults, break_line
from .gemini_answers import answer, grpc_code, status
from .gemini_answers import field as get_field
from .state import ApiError, EmulatorState, Pace, gc_paused

log = logging.getLogger(__name__)

PROVIDER = "gemini"
MIB = 1024 * 1024
MAX_INLINE_BODY_BYTES = 20 * MIB
"""The documented cap on a create call with inline requests."""
EXPIRY_SECONDS = 48 * 3600
"""A batch not done 48 hours after creation expires."""
FILE_TTL_SECONDS = 48 * 3600
"""Files API objects are kept 48 hours."""
TERMINAL = frozenset({"BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED",
                      "BATCH_STATE_EXPIRED"})
_HTTP_STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                      404: "NOT_FOUND", 409: "ALREADY_EXISTS", 413: "INVALID_ARGUMENT",
                      429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 501: "NOT_IMPLEMENTED",
                      503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def status_name(http_status: int) -> str:
    """The ``google.rpc.Code`` name Google APIs pair with an HTTP status."""
    return _HTTP_STATUS_NAMES.get(http_status, "INTERNAL" if http_status >= 500 else "FAILED_PRECONDITION")


class GeminiError(ApiError):
    """A Google-shaped error answer: ``{"error": {"code", "message", "status"}}``.

    Example: ``raise GeminiError(400, "Batch has ended.", "FAILED_PRECONDITION")``
    """

    def __init__(self, status: int, message: str, grpc_status: str | None = None) -> None:
        super().__init__(status, message)
        self.grpc_status = grpc_status or status_name(status)

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.status, "message": self.message, "status": self.grpc_status}}


def rfc3339(moment: float | None) -> str | None:
    """Unix seconds as an RFC 3339 UTC timestamp (protobuf JSON's Timestamp)."""
    if moment is None:
        return None
    return dt.datetime.fromtimestamp(moment, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class GeminiFile:
    """An uploaded file or a batch output file."""

    id: str
    display_name: str | None
    mime_type: str
    data: bytes
    created: float
    sequence: int
    source: str = "UPLOADED"

    @property
    def name(self) -> str:
        return f"files/{self.id}"

    def to_json(self, origin: str, version: str) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "mimeType": self.mime_type,
            "sizeBytes": str(len(self.data)),
            "createTime": rfc3339(self.created),
            "updateTime": rfc3339(self.created),
            "expirationTime": rfc3339(self.created + FILE_TTL_SECONDS),
            # the service sends the hex digest, base64-encoded (a proto bytes field holding text)
            "sha256Hash": base64.b64encode(hashlib.sha256(self.data).hexdigest().encode()).decode(),
            "uri": f"{origin}/{version}/{self.name}",
            "state": "ACTIVE",
            "source": self.source,
        }
        if self.display_name:
            doc["displayName"] = self.display_name
        if self.source == "GENERATED":
            doc["downloadUri"] = f"{origin}/download/{version}/{self.name}:download?alt=media"
        return doc


@dataclass
class UploadSession:
    """A resumable upload between its ``start`` and its ``finalize``."""

    id: str
    display_name: str | None
    mime_type: str
    declared_size: int | None
    received: bytearray = field(default_factory=bytearray)


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
    rows: list[GeminiRow]
    errors: list[dict[str, Any]]
    expires: float
    state: str = "BATCH_STATE_PENDING"
    updated: float = 0.0
    pace: Pace | None = None
    processed: int = 0
    answers: list[tuple[bool, str, Any]] = field(default_factory=list)
    """(succeeded, label, inline response object or output file line) of the answered rows, in
    processing order."""
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    cancel_requested_at: float | None = None
    ended_at: float | None = None
    output: dict[str, Any] | None = None
    faults: BatchFaults | None = None
    """What the fault plan in force at creation does to this batch."""

    @property
    def name(self) -> str:
        return f"batches/{self.id}"

    def to_json(self, version: str, *, with_inline_output: bool = True) -> dict[str, Any]:
        """The batch as the long-running operation that ``batches.get`` returns."""
        pending = 0 if self.state in TERMINAL else self.total - self.processed
        metadata: dict[str, Any] = {
            "@type": f"type.googleapis.com/google.ai.generativelanguage.{version}.GenerateContentBatch",
            "model": self.model,
            "displayName": self.display_name,
            "name": self.name,
            "createTime": rfc3339(self.created),
            "updateTime": rfc3339(self.updated or self.created),
            "batchStats": {
                "requestCount": str(self.total),
                "successfulRequestCount": str(self.succeeded),
                "failedRequestCount": str(self.failed),
                "pendingRequestCount": str(pending),
            },
            "state": self.state,
        }
        if self.ended_at is not None:
            metadata["endTime"] = rfc3339(self.ended_at)
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


class GeminiStore:
    """All files, upload sessions and batches of the emulated Gemini Developer API.

    Example::

        store = GeminiStore(EmulatorState(EmulatorConfig()))
        batch = store.create_batch("models/gemini-2.5-flash", {"batch": {"displayName": "t", "inputConfig": {
            "requests": {"requests": [{"request": {"contents": [...]}, "metadata": {"key": "k1"}}]}}}})
        store.get_batch(batch.id).to_json("v1beta")  # brought up to date with the clock
    """

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.files: dict[str, GeminiFile] = {}
        self.uploads: dict[str, UploadSession] = {}
        self.batches: dict[str, GeminiBatch] = {}
        self.inline_metadata = True
        """False reproduces python-genai#2008: inline responses come back without ``metadata``."""

    @property
    def stats(self) -> Any:
        """This provider's statistics (looked up each time: a reset replaces them)."""
        return self.state.stats_for(PROVIDER)

    # ---------------------------------------------------------------------------------- files
    def start_upload(self, meta: Mapping[str, Any], declared_size: int | None, mime_type: str | None) -> str:
        """Open a resumable upload session; return its id."""
        file_meta = get_field(meta, "file") if isinstance(meta, Mapping) else None
        file_meta = file_meta if isinstance(file_meta, Mapping) else {}
        session = UploadSession(
            id=self.state.new_id("", 32),
            display_name=get_field(file_meta, "displayName"),
            mime_type=str(get_field(file_meta, "mimeType") or mime_type or "application/octet-stream"),
            declared_size=declared_size,
        )
        self.uploads[session.id] = session
        return session.id

    def upload_chunk(self, upload_id: str, offset: int | None, data: bytes, finalize: bool) -> GeminiFile | None:
        """Append one chunk; on ``finalize`` store the file and return it."""
        session = self.uploads.get(upload_id)
        if session is None:
            raise GeminiError(404, f"Upload session {upload_id!r} not found or already finalized.")
        if offset is not None and offset != len(session.received):
            raise _invalid(f"Invalid upload offset {offset}: {len(session.received)} bytes were received.")
        session.received.extend(data)
        if not finalize:
            return None
        if session.declared_size is not None and session.declared_size != len(session.received):
            raise _invalid(f"Upload size mismatch: declared {session.declared_size} bytes, received "
                           f"{len(session.received)}.")
        del self.uploads[upload_id]
        stored = self.add_file(bytes(session.received), session.display_name, session.mime_type, "UPLOADED")
        self.stats.files_uploaded += 1
        log.info("gemini file %s uploaded: %d bytes", stored.name, len(stored.data))
        return stored

    def add_file(self, data: bytes, display_name: str | None, mime_type: str, source: str) -> GeminiFile:
        stored = GeminiFile(self.state.new_id("", 24), display_name, mime_type, data, self.state.now(),
                            self.state.next_sequence(), source)
        self.files[stored.id] = stored
        return stored

    def get_file(self, file_id: str) -> GeminiFile:
        stored = self.files.get(file_id.removeprefix("files/"))
        if stored is None:
            raise GeminiError(403, f"You do not have permission to access the File {file_id} or it may not "
                                   f"exist.")
        return stored

    def delete_file(self, file_id: str) -> None:
        del self.files[self.get_file(file_id).id]

    def download(self, file_id: str) -> bytes:
        stored = self.get_file(file_id)
        if stored.source != "GENERATED":
            raise _invalid(f"File {stored.name} was uploaded; only generated files can be downloaded.")
        return stored.data

    def list_files(self, page_size: int, offset: int) -> tuple[list[GeminiFile], int | None]:
        ordered = sorted(self.files.values(), key=lambda f: f.sequence, reverse=True)
        page = ordered[offset: offset + page_size]
        return page, offset + page_size if len(ordered) > offset + page_size else None

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
        now = self.state.now()
        expire_after = self.state.config.expire_after_seconds
        faults = None if errors else self.state.fault_plan.for_batch(PROVIDER, (row.label for row in rows))
        batch = GeminiBatch(
            id=self.state.new_id("", 24),
            display_name=str(get_field(batch_doc, "displayName") or ""),
            model=model_path,
            created=now,
            sequence=self.state.next_sequence(),
            inline=inline is not None,
            rows=rows,
            errors=errors,
            expires=now + (expire_after if expire_after is not None else EXPIRY_SECONDS),
            total=len(rows),
            faults=faults,
        )
        batch.rows = [row for _, row in sorted(enumerate(rows), key=lambda ir: _order_key(batch.id, *ir))]
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

    def get_batch(self, batch_id: str) -> GeminiBatch:
        batch = self.batches.get(batch_id.removeprefix("batches/"))
        if batch is None:
            raise GeminiError(404, f"Batch batches/{batch_id} not found.")
        self.advance(batch, self.state.now())
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
        batch = self.get_batch(batch_id)
        if batch.state == "BATCH_STATE_CANCELLED" or batch.cancel_requested_at is not None:
            return
        if batch.state in TERMINAL:
            raise GeminiError(400, f"Batch {batch.name} has already ended ({batch.state}) and cannot be "
                                   f"cancelled.", "FAILED_PRECONDITION")
        now = self.state.now()
        if batch.pace is not None:
            self._process(batch, batch.pace.done_at(now))
        batch.cancel_requested_at, batch.updated = now, now
        self.advance(batch, now)

    def delete_batch(self, batch_id: str) -> None:
        batch = self.get_batch(batch_id)
        del self.batches[batch.id]

    # ------------------------------------------------------------------------------ lifecycle
    def advance(self, batch: GeminiBatch, now: float) -> None:
        """Bring ``batch`` to the state and progress it has at ``now``."""
        config = self.state.config
        expire_at = batch.expires if config.expire_after_seconds is not None else None
        if batch.state == "BATCH_STATE_PENDING":
            started_at = batch.created + config.validating_seconds
            if expire_at is not None and expire_at <= started_at and now >= expire_at:
                self._finish(batch, "BATCH_STATE_EXPIRED", expire_at)
                return
            if now < started_at:
                return
            if batch.errors:
                self._finish(batch, "BATCH_STATE_FAILED", started_at)
                return
            batch.state, batch.updated = "BATCH_STATE_RUNNING", started_at
            rate = config.requests_per_second
            batch.pace = Pace(started_at, rate if batch.faults is None else batch.faults.pace(rate), len(batch.rows))
        if batch.state != "BATCH_STATE_RUNNING":
            return
        assert batch.pace is not None
        if batch.cancel_requested_at is not None:
            done_at = batch.cancel_requested_at + config.cancelling_seconds
            if now >= done_at:
                self._finish(batch, "BATCH_STATE_CANCELLED", done_at)
            return
        planned = batch.faults.expire_after(batch.pace.total) if batch.faults is not None else None
        if planned is not None:  # the fault plan expires it once `planned` rows are answered
            planned_at = batch.pace.start + planned / batch.pace.rate
            if (expire_at is None or planned_at <= expire_at) and now >= planned_at:
                self._process(batch, planned)
                self._finish(batch, "BATCH_STATE_EXPIRED", planned_at)
                return
        if expire_at is not None and expire_at < batch.pace.end and now >= expire_at:
            self._process(batch, batch.pace.done_at(expire_at))
            self._finish(batch, "BATCH_STATE_EXPIRED", expire_at)
            return
        done = batch.pace.done_at(now)
        self._process(batch, done if planned is None else min(done, planned))
        done_at = batch.pace.end + config.finalizing_seconds
        if now >= done_at:
            self._finish(batch, "BATCH_STATE_SUCCEEDED", done_at)

    def _process(self, batch: GeminiBatch, upto: int) -> None:
        """Answer the rows up to ``upto`` (in processing order) that are not answered yet."""
        if upto <= batch.processed:
            return
        with gc_paused():
            for row in batch.rows[batch.processed: upto]:
                injected = batch.faults.row_error(row.label) if batch.faults is not None else None
                if injected is not None:
                    kind, body = "error", status(grpc_code(injected),
                                                 f"Emulated failure '{injected}' injected by the fault plan.")
                    self.stats.row_errors_injected += 1
                else:
                    kind, body = answer(row.request, model_name=batch.model, seed=f"{batch.id}\x1f{row.label}")
                if kind == "response":
                    batch.succeeded += 1
                else:
                    batch.failed += 1
                batch.answers.append((kind == "response", row.label, self._output_item(batch, row, kind, body)))
        batch.processed = upto
        if batch.pace is not None:
            batch.updated = min(self.state.now(), batch.pace.end)

    def _output_item(self, batch: GeminiBatch, row: GeminiRow, kind: str, body: dict[str, Any]) -> Any:
        if batch.inline:
            item: dict[str, Any] = {kind: body}
            if row.metadata is not None and self.inline_metadata:
                item["metadata"] = row.metadata
            return item
        line: dict[str, Any] = {kind: body} if row.key is None else {"key": row.key, kind: body}
        return (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")

    def _finish(self, batch: GeminiBatch, state: str, moment: float) -> None:
        """Enter a terminal state and publish the output of the answered rows (none if expired)."""
        batch.state, batch.ended_at, batch.updated = state, moment, moment
        if state in ("BATCH_STATE_SUCCEEDED", "BATCH_STATE_CANCELLED"):
            items, delivered = self._deliver(batch)
            if batch.inline:
                batch.output = {"inlinedResponses": {"inlinedResponses": items}}
            else:
                out = self.add_file(b"".join(items), f"batch-{batch.id}-output", "application/jsonl", "GENERATED")
                batch.output = {"responsesFile": out.name}
            self.stats.succeeded_by_custom_id.update(delivered)
        batch.rows, batch.answers = [], []
        log.info("gemini batch %s %s: %d succeeded, %d failed of %d", batch.name, state, batch.succeeded,
                 batch.failed, batch.total)

    def _deliver(self, batch: GeminiBatch) -> tuple[list[Any], list[str]]:
        """The output items, with the fault plan's broken file lines, and the labels answered well."""
        items: list[Any] = []
        delivered: list[str] = []
        for succeeded, label, item in batch.answers:
            if not batch.inline and batch.faults is not None and self.state.fault_plan.breaks_line(
                PROVIDER, label, batch.faults.plan
            ):
                item = break_line(item)
                self.stats.malformed_lines += 1
            elif succeeded:
                delivered.append(label)
            items.append(item)
        return items, delivered
