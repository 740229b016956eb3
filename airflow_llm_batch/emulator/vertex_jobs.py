"""Batch prediction jobs of the emulated Vertex AI: validation, lifecycle, input and output.

A create call is validated at once (a malformed job is a 400 ``INVALID_ARGUMENT`` and creates
nothing). The job is ``JOB_STATE_QUEUED`` for the first half of ``validating_seconds``, then
``JOB_STATE_PENDING``; at ``validating_seconds`` it REALLY reads its input, from the Cloud
Storage emulator (``gcsSource.uris``: JSONL lines ``{"request": GenerateContentRequest, ...}``)
or the BigQuery emulator (``bigquerySource.inputUri``: a table with a ``request`` column). An
input that cannot be read fails the job (``JOB_STATE_FAILED`` with an ``error``). Then it is
``JOB_STATE_RUNNING`` and answers ``requests_per_second`` requests per second in an order that is
NOT the input order (sorted by a hash of each row's ``key``), and ``finalizing_seconds`` after
the last one it writes its output and ends:

* Cloud Storage output: ``{outputUriPrefix}/prediction-model-{created}/predictions.jsonl``, one
  line per answered row: the row's other input fields (such as ``key``) passed through, then
  ``status`` ("" or the error text), ``processed_time``, ``request`` and ``response`` (success
  only); ``outputInfo.gcsOutputDirectory`` names the folder.
* BigQuery output: ``bigqueryDestination.outputUri`` is ``bq://project.dataset`` (a table
  ``predictions_{created}_{job id}`` is created) or ``bq://project.dataset.table``; its columns are
  the input's other columns, then ``request`` (JSON), ``response`` (JSON), ``status`` (STRING) and
  ``processed_time`` (TIMESTAMP), written with a load job; ``outputInfo`` names dataset and table.

The end state is ``JOB_STATE_SUCCEEDED``, or ``JOB_STATE_PARTIALLY_SUCCEEDED`` when any row failed
(a choice of the emulator: the real service's rule is not documented). A cancel moves a job to
``JOB_STATE_CANCELLING`` and, after ``cancelling_seconds``, to ``JOB_STATE_CANCELLED`` with the rows
answered so far written out. With ``expire_after_seconds`` a job with rows left to answer by then
(the one expiry rule of :mod:`.lifecycle`) ends ``JOB_STATE_EXPIRED``, answered rows written, the
others counted ``incompleteCount``.
``completionStats`` counts answered rows as they go.

Progress follows the clock: whoever looks at a job brings it up to date (reading input and
writing output happen inside that request, awaited on aiohttp, never blocking the loop).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from . import model, wire
from .lifecycle import Phase, Timeline
from .progress import Answer, BatchRun, Delivery, RowAnswerer
from .state import EmulatorState, gc_paused
from .vertex_answers import Prediction, canonical_for_marker, error_status, predict
from .vertex_requests import VertexError, job_filter, validate_create
from .vertex_rows import (
    OUTPUT_COLUMNS,
    Answered,
    VertexRow,
    inferred_fields,
    output_line,
    output_record,
    row_from_line,
    row_from_record,
)
from .vertex_storage import BigQueryClient, BqField, GcsClient, GcsUri, StorageError, TableRef, VertexStorage

log = logging.getLogger(__name__)

PROVIDER = "vertex"
MAX_REQUESTS_PER_JOB = 200_000

#: JobState enum numbers (``$alt=json;enum-encoding=int`` answers carry these)
STATE_NUMBERS: dict[str, int] = {
    "JOB_STATE_UNSPECIFIED": 0, "JOB_STATE_QUEUED": 1, "JOB_STATE_PENDING": 2, "JOB_STATE_RUNNING": 3,
    "JOB_STATE_SUCCEEDED": 4, "JOB_STATE_FAILED": 5, "JOB_STATE_CANCELLING": 6, "JOB_STATE_CANCELLED": 7,
    "JOB_STATE_PAUSED": 8, "JOB_STATE_EXPIRED": 9, "JOB_STATE_UPDATING": 10, "JOB_STATE_PARTIALLY_SUCCEEDED": 11,
}
TERMINAL = frozenset({"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED",
                      "JOB_STATE_PARTIALLY_SUCCEEDED"})
#: google.rpc.Code numbers of the canonical statuses a job error may carry
RPC_CODES: dict[str, int] = {
    "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9,
    "ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12, "INTERNAL": 13, "UNAVAILABLE": 14, "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}
STATES: dict[Phase, str] = {
    Phase.VALIDATING: "JOB_STATE_PENDING", Phase.IN_PROGRESS: "JOB_STATE_RUNNING",
    Phase.FINALIZING: "JOB_STATE_RUNNING", Phase.CANCELLING: "JOB_STATE_CANCELLING",
    Phase.COMPLETED: "JOB_STATE_SUCCEEDED", Phase.FAILED: "JOB_STATE_FAILED",
    Phase.CANCELLED: "JOB_STATE_CANCELLED", Phase.EXPIRED: "JOB_STATE_EXPIRED",
}
"""The job state for each phase (see :func:`_state` for QUEUED and PARTIALLY_SUCCEEDED)."""


@dataclass
class VertexJob:
    """One batch prediction job and its progress."""

    id: str
    parent: str
    display_name: str
    model: str
    labels: dict[str, str]
    input_config: dict[str, Any]
    output_config: dict[str, Any]
    created: float
    sequence: int
    run: BatchRun[VertexRow, Answered]
    """Its timeline knows the rows once the input is read, when validation ends."""
    state: str = "JOB_STATE_QUEUED"
    input_fields: list[BqField] | None = None
    update_time: float = 0.0
    error: dict[str, Any] | None = None
    output_info: dict[str, str] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def name(self) -> str:
        return f"{self.parent}/batchPredictionJobs/{self.id}"

    @property
    def project(self) -> str:
        return self.parent.split("/")[1]

    def to_json(self, *, enum_numbers: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "displayName": self.display_name,
            "model": self.model,
            "inputConfig": self.input_config,
            "outputConfig": self.output_config,
            "state": STATE_NUMBERS[self.state] if enum_numbers else self.state,
            "createTime": wire.rfc3339(self.created),
            "updateTime": wire.rfc3339(self.update_time or self.created),
        }
        if self.labels:
            body["labels"] = self.labels
        now, progress, total = self.run.now, self.run.progress, self.run.timeline.total
        if now.started_at is not None:
            body["startTime"] = wire.rfc3339(now.started_at)
        if now.ended_at is not None:
            body["endTime"] = wire.rfc3339(now.ended_at)
        if total is not None or self.state in TERMINAL:
            incomplete = max(0, (total or 0) - progress.succeeded - progress.failed)
            body["completionStats"] = {"successfulCount": str(progress.succeeded),
                                       "failedCount": str(progress.failed), "incompleteCount": str(incomplete)}
        if self.output_info:
            body["outputInfo"] = self.output_info
        if self.error:
            body["error"] = self.error
        return body


class VertexJobs:
    """All batch prediction jobs of the emulated Vertex AI, with the storage they read and write."""

    def __init__(self, state: EmulatorState, storage: VertexStorage | None = None) -> None:
        self.state = state
        self.storage = storage or VertexStorage()
        self.jobs: dict[str, VertexJob] = {}
        self.stats = state.stats_for(PROVIDER)
        #: one job at a time talks to the BigQuery emulator (its reads are not safe under concurrency)
        self.bigquery_lock = asyncio.Lock()

    def create(self, parent: str, payload: Any) -> VertexJob:
        fields = validate_create(payload)
        now = self.state.now()
        job = VertexJob(id=str(10**18 + secrets.randbelow(9 * 10**18)), parent=parent, created=now,
                        sequence=self.state.next_sequence(), update_time=now,
                        run=BatchRun(Timeline.for_batch(now, self.state.config), []), **fields)
        self.jobs[job.id] = job
        self.stats.batches_created += 1
        self.stats.batches.append(job.name)
        log.info("vertex job %s created", job.id)
        return job

    def find(self, parent: str, job_id: str) -> VertexJob:
        job = self.jobs.get(job_id)
        if job is None or job.parent != parent:
            raise VertexError(404, f"The BatchPredictionJob does not exist: {parent}/batchPredictionJobs/{job_id}",
                              "NOT_FOUND")
        return job

    async def get(self, parent: str, job_id: str) -> VertexJob:
        job = self.find(parent, job_id)
        await self.advance(job)
        return job

    async def list_jobs(self, parent: str, expression: str, page_size: int,
                        token: str | None) -> tuple[list[VertexJob], str | None]:
        accept = job_filter(expression)
        start = int(token) if token and token.isdigit() else 0
        ordered = sorted((j for j in self.jobs.values() if j.parent == parent), key=lambda j: -j.sequence)
        for job in ordered:
            await self.advance(job)
        matching = [j for j in ordered if accept(j)]
        page = matching[start:start + page_size]
        return page, str(start + page_size) if start + page_size < len(matching) else None

    async def cancel(self, parent: str, job_id: str) -> None:
        job = await self.get(parent, job_id)  # catch up first (reading input): the cancel moment comes after
        now = self.state.now()  # one moment decides both whether it has ended and when it is cancelled
        await self.advance(job, now)
        if job.state == "JOB_STATE_CANCELLING":
            return
        if job.state in TERMINAL:
            raise VertexError(400, f"Cannot cancel BatchPredictionJob {job.name} in state {job.state}.",
                              "FAILED_PRECONDITION")
        async with job.lock:
            job.run.timeline = job.run.timeline.cancel(now)
        await self.advance(job, now)

    async def delete(self, parent: str, job_id: str) -> VertexJob:
        job = await self.get(parent, job_id)
        if job.state not in TERMINAL:
            raise VertexError(400, f"BatchPredictionJob {job.name} is in state {job.state}; only ended jobs can "
                                   f"be deleted (cancel it first).", "FAILED_PRECONDITION")
        del self.jobs[job.id]
        return job

    # -- lifecycle --------------------------------------------------------------------------------------
    async def advance(self, job: VertexJob, now: float | None = None) -> None:
        """Bring ``job`` to the state it has at ``now``, default the clock (reading input, writing output
        as needed)."""
        if job.state in TERMINAL:
            return
        async with job.lock:
            await self._advance(job, self.state.now() if now is None else now)

    async def _advance(self, job: VertexJob, now: float) -> None:
        if job.state in TERMINAL:  # ended while this call waited for the lock
            return
        run = job.run
        if run.timeline.total is None and run.timeline.at(now).started_at is not None:
            await self._start(job)
        ended = run.advance(now, self._answerer(job), self.stats)
        job.state, job.update_time = _state(job, now), run.timeline.last_change(now)
        if ended:
            await self._finish(job)

    async def _start(self, job: VertexJob) -> None:
        """Read the input when validation ends: the job runs on its rows, or fails."""
        try:
            async with aiohttp.ClientSession() as session:
                rows = await self._read_input(session, job)
        except StorageError as exc:
            return self._fail(job, exc.canonical, exc.message)
        except (aiohttp.ClientError, OSError) as exc:  # the storage emulator is down or unreachable
            return self._fail(job, "UNAVAILABLE", f"Reading the input failed: {type(exc).__name__}")
        if not rows:
            return self._fail(job, "INVALID_ARGUMENT", "The input holds no requests.")
        if len(rows) > MAX_REQUESTS_PER_JOB:
            return self._fail(job, "INVALID_ARGUMENT", f"The input holds {len(rows)} requests; a job takes at "
                                                       f"most {MAX_REQUESTS_PER_JOB}.")
        keys = [row.key for row in rows if row.key is not None]
        self.stats.requests_by_custom_id.update(keys)
        self.stats.accepted_requests_by_custom_id.update(keys)
        rows.sort(key=lambda r: model.short_id(r.key if r.key is not None else json.dumps(r.passthrough)))
        job.run.faults = self.state.fault_plan.for_batch(PROVIDER, keys)
        job.run.rows, job.run.timeline = rows, job.run.timeline.with_rows(len(rows), job.run.faults)
        log.info("vertex job %s running: %d requests", job.id, len(rows))

    def _fail(self, job: VertexJob, canonical: str, message: str) -> None:
        """The input cannot be read: the job fails when validation ends."""
        job.error = _rpc_error(canonical, message)
        job.run.timeline = job.run.timeline.failed()
        log.info("vertex job %s failed: %s: %s", job.id, canonical, message[:300])

    def _answerer(self, job: VertexJob) -> RowAnswerer[VertexRow, Answered]:
        timeline = job.run.timeline

        def answer(row: VertexRow, index: int) -> tuple[bool, Answered]:
            moment = timeline.answered_at(index)
            if row.broken is not None:
                prediction = Prediction(error_status("INVALID_ARGUMENT", row.broken))
            else:
                prediction = predict(row.request, model_name=job.model, seed=f"{job.id}\x1f{row.key}",
                                     created=wire.rfc3339(moment) or "")
            return prediction.ok, (row, prediction, moment)

        def inject(row: VertexRow, index: int, code: str) -> Answered:
            message = f"Emulated failure '{code}' injected by the fault plan."
            return row, Prediction(error_status(canonical_for_marker(code), message)), timeline.answered_at(index)

        return RowAnswerer(label=lambda row: row.key if row.broken is None else None, answer=answer, inject=inject)

    async def _finish(self, job: VertexJob) -> None:
        """Write the answered rows out (when the input was read) and end the job."""
        run = job.run
        if run.now.phase is Phase.CANCELLED:
            job.error = _rpc_error("CANCELLED", "The job was cancelled.")
        if run.timeline.total is not None:
            try:
                async with aiohttp.ClientSession() as session:
                    job.output_info = await self._write_output(session, job)
            except StorageError as exc:
                job.error = _rpc_error(exc.canonical, f"Writing the output failed: {exc.message}")
                job.state = "JOB_STATE_FAILED"
            except (aiohttp.ClientError, OSError) as exc:
                job.error = _rpc_error("UNAVAILABLE", f"Writing the output failed: {type(exc).__name__}")
                job.state = "JOB_STATE_FAILED"
        run.release()
        log.info("vertex job %s ended %s: %d succeeded, %d failed, %d incomplete", job.id, job.state,
                 run.progress.succeeded, run.progress.failed,
                 max(0, (run.timeline.total or 0) - run.progress.succeeded - run.progress.failed))

    # -- input ------------------------------------------------------------------------------------------
    async def _read_input(self, session: aiohttp.ClientSession, job: VertexJob) -> list[VertexRow]:
        source = job.input_config
        if source.get("gcsSource"):
            gcs = GcsClient(session, self.storage.require_gcs())
            uris = source["gcsSource"]["uris"]
            rows: list[VertexRow] = []
            for uri in uris if isinstance(uris, list) else [uris]:
                async for line in gcs.read_lines(GcsUri.parse(uri)):
                    if line.strip():
                        rows.append(row_from_line(line))
            return rows
        bigquery = BigQueryClient(session, self.storage.require_bigquery())
        ref = TableRef.parse(source["bigquerySource"]["inputUri"], job.project)
        async with self.bigquery_lock:
            fields = await bigquery.schema(ref)
            if fields is None:
                raise StorageError("NOT_FOUND", f"input table {ref} does not exist")
            if not any(f.name == "request" for f in fields):
                raise StorageError("INVALID_ARGUMENT", f"input table {ref} has no 'request' column")
            job.input_fields = [f for f in fields if f.name not in OUTPUT_COLUMNS]
            with gc_paused():
                return [row_from_record(record) async for record in bigquery.rows(ref, fields)]

    # -- output -----------------------------------------------------------------------------------------
    async def _write_output(self, session: aiohttp.ClientSession, job: VertexJob) -> dict[str, str]:
        destination = job.output_config
        stamp = dt.datetime.fromtimestamp(job.created, dt.timezone.utc)
        if destination.get("gcsDestination"):
            gcs = GcsClient(session, self.storage.require_gcs())
            prefix = str(destination["gcsDestination"]["outputUriPrefix"]).rstrip("/")
            folder = f"{prefix}/prediction-model-{stamp.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z"
            with gc_paused():
                lines = [Answer(prediction.ok, row.key, output_line(row, prediction, moment))
                         for row, prediction, moment in _answered(job)]
                data = b"".join(Delivery(PROVIDER, self.state.fault_plan, self.stats).deliver_lines(lines,
                                                                                                    job.run.faults))
            await gcs.write(GcsUri.parse(f"{folder}/predictions.jsonl"), data)
            return {"gcsOutputDirectory": folder}
        async with self.bigquery_lock:
            return await self._write_bigquery(BigQueryClient(session, self.storage.require_bigquery()), job, stamp)

    async def _write_bigquery(self, bigquery: BigQueryClient, job: VertexJob, stamp: dt.datetime) -> dict[str, str]:
        ref = TableRef.parse(job.output_config["bigqueryDestination"]["outputUri"], job.project)
        if not await bigquery.dataset_exists(ref):
            raise StorageError("NOT_FOUND", f"output dataset bq://{ref.project}.{ref.dataset} does not exist")
        if ref.table is None:
            ref = ref.with_table(f"predictions_{stamp.strftime('%Y_%m_%dT%H_%M_%S_%f')}_{job.id}")
        fields = [*(job.input_fields if job.input_fields is not None else inferred_fields(_answered(job))),
                  BqField("request", "JSON"), BqField("response", "JSON"), BqField("status", "STRING"),
                  BqField("processed_time", "TIMESTAMP")]
        await bigquery.create_table(ref, fields)
        names = [f.name for f in fields]
        records = [{name: value for name, value in output_record(row, prediction, moment).items() if name in names}
                   for row, prediction, moment in _answered(job)]
        await bigquery.load(ref, fields, records)
        self.stats.succeeded_by_custom_id.update(row.key for row, prediction, _ in _answered(job)
                                                 if prediction.ok and row.key is not None)
        return {"bigqueryOutputDataset": f"bq://{ref.project}.{ref.dataset}", "bigqueryOutputTable": str(ref.table)}


def _answered(job: VertexJob) -> Iterator[Answered]:
    return (answer.item for answer in job.run.progress.answers)


def _rpc_error(canonical: str, message: str) -> dict[str, Any]:
    """A job's ``error``: a google.rpc.Status with the code number of ``canonical``."""
    return {"code": RPC_CODES.get(canonical, 13), "message": message}


def _state(job: VertexJob, now: float) -> str:
    """The job state at ``now``: QUEUED for the first half of validation, PARTIALLY_SUCCEEDED when a
    row failed, else the state table's word."""
    phase = job.run.now.phase
    if phase is Phase.VALIDATING and now < job.created + job.run.timeline.validating_seconds / 2:
        return "JOB_STATE_QUEUED"
    if phase is Phase.COMPLETED and job.run.progress.failed:
        return "JOB_STATE_PARTIALLY_SUCCEEDED"
    return STATES[phase]


__all__ = ["PROVIDER", "STATE_NUMBERS", "TERMINAL", "VertexJob", "VertexJobs", "VertexRow"]
