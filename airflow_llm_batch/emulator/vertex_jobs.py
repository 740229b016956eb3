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
answered so far written out. With ``expire_after_seconds`` a job not done by then ends
``JOB_STATE_EXPIRED``, answered rows written, the others counted ``incompleteCount``.
``completionStats`` counts answered rows as they go.

Progress follows the clock: whoever looks at a job brings it up to date (reading input and
writing output happen inside that request, awaited on aiohttp, never blocking the loop).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from . import model
from .faults import BatchFaults, break_line
from .state import EmulatorState, Pace, gc_paused
from .vertex_answers import Prediction, canonical_for_marker, error_status, predict
from .vertex_requests import VertexError, job_filter, validate_create
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
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,299}$")
_OUTPUT_COLUMNS = ("request", "response", "status", "processed_time")


def rfc3339(moment: float | None) -> str | None:
    if moment is None:
        return None
    return dt.datetime.fromtimestamp(moment, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class VertexRow:
    """One input row: its request, the fields passed through to the output, or why it is unreadable."""

    request: Any
    passthrough: dict[str, Any]
    key: str | None
    broken: str | None = None


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
    state: str = "JOB_STATE_QUEUED"
    rows: list[VertexRow] | None = None
    input_fields: list[BqField] | None = None
    pace: Pace | None = None
    processed: int = 0
    answers: list[tuple[VertexRow, Prediction, float]] = field(default_factory=list)
    succeeded: int = 0
    failed: int = 0
    total: int = 0
    start_time: float | None = None
    end_time: float | None = None
    update_time: float = 0.0
    cancel_at: float | None = None
    error: dict[str, Any] | None = None
    output_info: dict[str, str] | None = None
    faults: BatchFaults | None = None
    """What the fault plan in force when the job started does to it."""
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
            "createTime": rfc3339(self.created),
            "updateTime": rfc3339(self.update_time or self.created),
        }
        if self.labels:
            body["labels"] = self.labels
        if self.start_time is not None:
            body["startTime"] = rfc3339(self.start_time)
        if self.end_time is not None:
            body["endTime"] = rfc3339(self.end_time)
        if self.rows is not None or self.state in TERMINAL:
            incomplete = max(0, self.total - self.succeeded - self.failed)
            body["completionStats"] = {"successfulCount": str(self.succeeded), "failedCount": str(self.failed),
                                       "incompleteCount": str(incomplete)}
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
                        sequence=self.state.next_sequence(), update_time=now, **fields)
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
        job = await self.get(parent, job_id)
        if job.state == "JOB_STATE_CANCELLING":
            return
        if job.state in TERMINAL:
            raise VertexError(400, f"Cannot cancel BatchPredictionJob {job.name} in state {job.state}.",
                              "FAILED_PRECONDITION")
        async with job.lock:
            now = self.state.now()
            if job.state == "JOB_STATE_RUNNING" and job.pace is not None:
                self._process(job, job.pace.done_at(now))
            job.state, job.cancel_at, job.update_time = "JOB_STATE_CANCELLING", now, now
        await self.advance(job)

    async def delete(self, parent: str, job_id: str) -> VertexJob:
        job = await self.get(parent, job_id)
        if job.state not in TERMINAL:
            raise VertexError(400, f"BatchPredictionJob {job.name} is in state {job.state}; only ended jobs can "
                                   f"be deleted (cancel it first).", "FAILED_PRECONDITION")
        del self.jobs[job.id]
        return job

    # -- lifecycle --------------------------------------------------------------------------------------
    async def advance(self, job: VertexJob) -> None:
        """Bring ``job`` to the state it has now (reading input, writing output as needed)."""
        if job.state in TERMINAL:
            return
        async with job.lock:
            await self._advance(job, self.state.now())

    async def _advance(self, job: VertexJob, now: float) -> None:
        config = self.state.config
        start_at = job.created + config.validating_seconds
        expire_at = job.created + config.expire_after_seconds if config.expire_after_seconds else None
        if job.state in ("JOB_STATE_QUEUED", "JOB_STATE_PENDING"):
            if expire_at is not None and expire_at <= start_at and now >= expire_at:
                await self._finish(job, expire_at, "JOB_STATE_EXPIRED")
                return
            if now >= job.created + config.validating_seconds / 2:
                job.state = "JOB_STATE_PENDING"
            if now < start_at:
                return
            await self._start(job, start_at)
            if job.state != "JOB_STATE_RUNNING":
                return
        if job.state == "JOB_STATE_RUNNING":
            assert job.pace is not None
            end_at = job.pace.end + config.finalizing_seconds
            upto: int | None = None
            planned = job.faults.expire_after(job.total) if job.faults is not None else None
            if planned is not None:  # the fault plan expires it once `planned` rows are answered
                planned_at = job.pace.start + planned / job.pace.rate
                if expire_at is None or planned_at <= expire_at:
                    expire_at, upto = planned_at, planned
            if expire_at is not None and expire_at < end_at and now >= expire_at:
                self._process(job, job.pace.done_at(expire_at) if upto is None else upto)
                await self._finish(job, expire_at, "JOB_STATE_EXPIRED")
                return
            self._process(job, job.pace.done_at(now))
            job.update_time = now
            if now >= end_at:
                await self._finish(job, end_at, "JOB_STATE_PARTIALLY_SUCCEEDED" if job.failed else
                                   "JOB_STATE_SUCCEEDED")
        elif job.state == "JOB_STATE_CANCELLING":
            assert job.cancel_at is not None
            end_at = job.cancel_at + config.cancelling_seconds
            if now >= end_at:
                await self._finish(job, end_at, "JOB_STATE_CANCELLED")

    async def _start(self, job: VertexJob, moment: float) -> None:
        try:
            async with aiohttp.ClientSession() as session:
                rows = await self._read_input(session, job)
        except StorageError as exc:
            self._fail(job, moment, exc.canonical, exc.message)
            return
        except (aiohttp.ClientError, OSError) as exc:  # the storage emulator is down or unreachable
            self._fail(job, moment, "UNAVAILABLE", f"Reading the input failed: {type(exc).__name__}")
            return
        if not rows:
            self._fail(job, moment, "INVALID_ARGUMENT", "The input holds no requests.")
            return
        if len(rows) > MAX_REQUESTS_PER_JOB:
            self._fail(job, moment, "INVALID_ARGUMENT", f"The input holds {len(rows)} requests; a job takes at "
                                                        f"most {MAX_REQUESTS_PER_JOB}.")
            return
        keys = [row.key for row in rows if row.key is not None]
        self.stats.requests_by_custom_id.update(keys)
        self.stats.accepted_requests_by_custom_id.update(keys)
        rows.sort(key=lambda r: model.short_id(r.key if r.key is not None else json.dumps(r.passthrough)))
        job.faults = self.state.fault_plan.for_batch(PROVIDER, keys)
        rate = self.state.config.requests_per_second
        job.rows, job.total = rows, len(rows)
        job.pace = Pace(moment, rate if job.faults is None else job.faults.pace(rate), len(rows))
        job.state, job.start_time, job.update_time = "JOB_STATE_RUNNING", moment, moment
        log.info("vertex job %s running: %d requests", job.id, len(rows))

    def _fail(self, job: VertexJob, moment: float, canonical: str, message: str) -> None:
        job.error = {"code": RPC_CODES.get(canonical, 13), "message": message}
        job.state, job.end_time, job.update_time = "JOB_STATE_FAILED", moment, moment
        job.rows = None
        log.info("vertex job %s failed: %s: %s", job.id, canonical, message[:300])

    def _process(self, job: VertexJob, upto: int) -> None:
        """Answer the rows up to ``upto`` (in processing order)."""
        if job.rows is None or job.pace is None or upto <= job.processed:
            return
        with gc_paused():
            for index in range(job.processed, upto):
                row = job.rows[index]
                moment = job.pace.start + (index + 1) / job.pace.rate
                injected = job.faults.row_error(row.key) if job.faults is not None and row.key else None
                if row.broken is not None:
                    prediction = Prediction(error_status("INVALID_ARGUMENT", row.broken))
                elif injected is not None:
                    prediction = Prediction(error_status(canonical_for_marker(injected),
                                                         f"Emulated failure '{injected}' injected by the fault plan."))
                    self.stats.row_errors_injected += 1
                else:
                    prediction = predict(row.request, model_name=job.model, seed=f"{job.id}\x1f{row.key}",
                                         created=rfc3339(moment) or "")
                job.answers.append((row, prediction, moment))
                if prediction.ok:
                    job.succeeded += 1
                else:
                    job.failed += 1
        job.processed = upto

    async def _finish(self, job: VertexJob, moment: float, final: str) -> None:
        """Write the answered rows out (when the input was read) and end the job in ``final``."""
        if final == "JOB_STATE_CANCELLED":
            job.error = {"code": RPC_CODES["CANCELLED"], "message": "The job was cancelled."}
        if job.rows is not None:
            try:
                async with aiohttp.ClientSession() as session:
                    job.output_info = await self._write_output(session, job)
            except StorageError as exc:
                self._fail(job, moment, exc.canonical, f"Writing the output failed: {exc.message}")
                job.answers = []
                return
            except (aiohttp.ClientError, OSError) as exc:
                self._fail(job, moment, "UNAVAILABLE", f"Writing the output failed: {type(exc).__name__}")
                job.answers = []
                return
        job.state, job.end_time, job.update_time = final, moment, moment
        job.rows, job.answers = None, []
        log.info("vertex job %s ended %s: %d succeeded, %d failed, %d incomplete", job.id, final, job.succeeded,
                 job.failed, max(0, job.total - job.succeeded - job.failed))

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
                        rows.append(_row_from_line(line))
            return rows
        bigquery = BigQueryClient(session, self.storage.require_bigquery())
        ref = TableRef.parse(source["bigquerySource"]["inputUri"], job.project)
        async with self.bigquery_lock:
            fields = await bigquery.schema(ref)
            if fields is None:
                raise StorageError("NOT_FOUND", f"input table {ref} does not exist")
            if not any(f.name == "request" for f in fields):
                raise StorageError("INVALID_ARGUMENT", f"input table {ref} has no 'request' column")
            job.input_fields = [f for f in fields if f.name not in _OUTPUT_COLUMNS]
            with gc_paused():
                return [_row_from_record(record) async for record in bigquery.rows(ref, fields)]

    # -- output -----------------------------------------------------------------------------------------
    async def _write_output(self, session: aiohttp.ClientSession, job: VertexJob) -> dict[str, str]:
        destination = job.output_config
        stamp = dt.datetime.fromtimestamp(job.created, dt.timezone.utc)
        if destination.get("gcsDestination"):
            gcs = GcsClient(session, self.storage.require_gcs())
            prefix = str(destination["gcsDestination"]["outputUriPrefix"]).rstrip("/")
            folder = f"{prefix}/prediction-model-{stamp.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z"
            with gc_paused():
                data = b"".join(self._delivered_line(job, row, prediction, moment)
                                for row, prediction, moment in job.answers)
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
        fields = [*(job.input_fields if job.input_fields is not None else _inferred_fields(job)),
                  BqField("request", "JSON"), BqField("response", "JSON"), BqField("status", "STRING"),
                  BqField("processed_time", "TIMESTAMP")]
        await bigquery.create_table(ref, fields)
        names = [f.name for f in fields]
        records = [{name: value for name, value in _output_record(row, prediction, moment).items() if name in names}
                   for row, prediction, moment in job.answers]
        await bigquery.load(ref, fields, records)
        self.stats.succeeded_by_custom_id.update(row.key for row, prediction, _ in job.answers
                                                 if prediction.ok and row.key is not None)
        return {"bigqueryOutputDataset": f"bq://{ref.project}.{ref.dataset}", "bigqueryOutputTable": str(ref.table)}

    def _delivered_line(self, job: VertexJob, row: VertexRow, prediction: Prediction, moment: float) -> bytes:
        """One predictions.jsonl line; the fault plan may break it (then it is no delivered answer)."""
        line = _output_line(row, prediction, moment)
        if job.faults is not None and row.key is not None and self.state.fault_plan.breaks_line(
                PROVIDER, row.key, job.faults.plan):
            self.stats.malformed_lines += 1
            return break_line(line)
        if prediction.ok and row.key is not None:
            self.stats.succeeded_by_custom_id[row.key] += 1
        return line


def _row_from_line(line: bytes) -> VertexRow:
    try:
        document = json.loads(line)
    except ValueError:
        return VertexRow(None, {}, None, "The input line is not valid JSON.")
    if not isinstance(document, dict):
        return VertexRow(None, {}, None, "The input line is not a JSON object.")
    passthrough = {k: v for k, v in document.items() if k != "request"}
    key = passthrough.get("key")
    broken = None if "request" in document else 'The input line has no "request" field.'
    return VertexRow(document.get("request"), passthrough, None if key is None else str(key), broken)


def _row_from_record(record: dict[str, Any]) -> VertexRow:
    request = record.get("request")
    passthrough = {k: v for k, v in record.items() if k not in _OUTPUT_COLUMNS}
    key = passthrough.get("key")
    broken = None
    if isinstance(request, str):
        try:
            request = json.loads(request)
        except ValueError:
            broken = "The request column does not hold valid JSON."
    return VertexRow(request, passthrough, None if key is None else str(key), broken)


def _output_record(row: VertexRow, prediction: Prediction, moment: float) -> dict[str, Any]:
    record: dict[str, Any] = {**row.passthrough, "status": prediction.status, "processed_time": rfc3339(moment),
                              "request": row.request}
    if prediction.response is not None:
        record["response"] = prediction.response
    return record


def _output_line(row: VertexRow, prediction: Prediction, moment: float) -> bytes:
    return (json.dumps(_output_record(row, prediction, moment), ensure_ascii=False, separators=(",", ":"))
            + "\n").encode("utf-8")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    return "STRING" if isinstance(value, str) else "JSON"


def _inferred_fields(job: VertexJob) -> list[BqField]:
    """Columns for the passed-through fields of JSONL input (their JSON types; mixed types -> JSON)."""
    kinds: dict[str, set[str]] = {}
    for row, _, _ in job.answers:
        for name, value in row.passthrough.items():
            if _COLUMN.match(name) and name not in _OUTPUT_COLUMNS and value is not None:
                kinds.setdefault(name, set()).add(_kind(value))
    fields = []
    for name, found in kinds.items():
        kind = found.pop() if len(found) == 1 else ("FLOAT64" if found == {"INT64", "FLOAT64"} else "JSON")
        fields.append(BqField(name, kind))
    return fields


__all__ = ["PROVIDER", "STATE_NUMBERS", "TERMINAL", "VertexJob", "VertexJobs", "VertexRow"]
