"""Results into a BigQuery table through a load job (never streaming inserts), idempotent per task run.

The rows are staged as NDJSON (a local temporary file, or ``staging_uri`` on GCS for very large
runs) and loaded with a load job; the table is created when missing, with typed columns for the
parsed answer (see :mod:`airflow_llm_batch.google.bq_schema`). What "this landing" means: the
rows of one task run, identified by ``dag_id, task_id, run_id, map_index`` (all columns of the
table). Landing the same task run again (a retry, a cleared task) replaces its rows; it never adds
a second copy.

Modes:

* ``merge`` (default): load into a staging table, then ONE ``MERGE`` statement (atomic for
  readers): rows matched on ``key`` + the landing's identity are updated, new ones inserted, and
  rows of this landing that are no longer in the results are deleted.
* ``append``: ``DELETE`` this landing's rows, then load straight into the table. Cheaper (no
  staging table) but not atomic: between the two steps readers miss this run's rows.
* ``replace_partition``: the table is partitioned by day on ``partition_field`` (a DATE column,
  default ``partition_date``) and the landing replaces the WHOLE partition of ``partition_date``
  (e.g. ``{{ ds }}``) in one ``MERGE``, whichever run or task wrote it before: a manual re-run of a
  day, with a new run_id, does not double that day.

Example::

    LLMBatchOperator(..., destination="bq://my-project.support.ticket_triage?mode=merge")
    # or a Sink object with keyword options:
    BigQuerySink("bq://my-project.support.ticket_triage", mode="replace_partition",
                 partition_date="{{ ds }}", conn_id="google_cloud_default")
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import IO, Any, ClassVar

from airflow_llm_batch.exceptions import InvalidInputError, LLMBatchError
from airflow_llm_batch.google.bq_schema import (
    BOOL,
    DATE,
    INT64,
    JSON,
    NULLABLE,
    RECORD,
    REQUIRED,
    STRING,
    TIMESTAMP,
    CoercionStats,
    Column,
    SchemaMappingError,
    coerce,
    columns_from_json_schema,
    compare,
    from_schema_fields,
    to_schema_fields,
    with_additions,
)
from airflow_llm_batch.google.uris import BigQueryRef, merge_options
from airflow_llm_batch.pipeline.types import ResultRow, RowStatus
from airflow_llm_batch.sinks.base import LandingContext

log = logging.getLogger(__name__)

MODES = ("merge", "append", "replace_partition")
PARSED_AS = ("columns", "record", "json")
DEFAULT_RETRY_DEADLINE = 120.0
JOB_TIMEOUT = 3600.0
STAGING_EXPIRY = dt.timedelta(days=1)
_IDENTITY = ("dag_id", "task_id", "run_id", "map_index")

_HEAD = (Column("key", STRING, REQUIRED), Column("status", STRING, REQUIRED))
_TAIL = (
    Column("error_code", STRING), Column("error_message", STRING), Column("output", STRING),
    Column("input_tokens", INT64), Column("output_tokens", INT64), Column("cached_input_tokens", INT64),
    Column("model", STRING), Column("batch_id", STRING), Column("custom_id", STRING), Column("attempts", INT64),
    Column("cached", BOOL, description="answered from the request cache (not paid again)"),
    Column("extra", JSON, description="carried input columns and notes such as finish_reason"),
    Column("dag_id", STRING, REQUIRED), Column("task_id", STRING, REQUIRED), Column("run_id", STRING, REQUIRED),
    Column("map_index", INT64, REQUIRED), Column("landed_at", TIMESTAMP, REQUIRED),
)
SYSTEM_COLUMNS = frozenset(c.name for c in (*_HEAD, *_TAIL))


class BigQueryLandingError(LLMBatchError):
    """BigQuery refused or could not take the results; they stay in the workspace for a retry."""


class BigQueryUnavailableError(BigQueryLandingError):
    """BigQuery could not be reached (network, 5xx) within the retry deadline."""


@dataclass(frozen=True)
class _Config:
    ref: BigQueryRef
    mode: str
    conn_id: str | None
    parsed_as: str
    partition_field: str
    partition_date: dt.date | None
    retry_deadline: float
    staging_uri: str | None


class BigQuerySink:
    """Land results in ``bq://project.dataset.table`` (a load job, then MERGE/DELETE per ``mode``).

    Options (keyword arguments, or ``?name=value`` after the URI):

    * ``mode``: ``merge`` (default) | ``append`` | ``replace_partition`` (module docstring).
    * ``conn_id``: the ``google_cloud_platform`` connection (default ``google_cloud_default``).
    * ``parsed_as``: ``columns`` (default: one typed column per top-level field of the response
      schema), ``record`` (one RECORD column ``parsed``) or ``json`` (one JSON column ``parsed``).
      Without a response schema, ``parsed`` is a JSON column.
    * ``partition_date`` (YYYY-MM-DD) and ``partition_field`` (default ``partition_date``): for
      ``replace_partition``.
    * ``staging_uri``: ``gs://bucket/prefix`` to stage the NDJSON there instead of a local temporary
      file (the load job then reads it from GCS; the object is deleted afterwards).
    * ``retry_deadline``: seconds to keep retrying transient errors (default 120).

    Example::

        LLMBatchOperator(task_id="triage", ..., response_format=Triage,
                         destination="bq://my-project.support.triage?mode=merge")
    """

    template_fields: ClassVar[tuple[str, ...]] = ("uri",)
    _OPTIONS: ClassVar[frozenset[str]] = frozenset(
        {"mode", "conn_id", "parsed_as", "partition_date", "partition_field", "retry_deadline", "staging_uri"})

    def __init__(self, destination: str, **options: Any) -> None:
        self.uri = destination
        self.given = options

    def __repr__(self) -> str:
        return f"BigQuerySink({self.uri!r}{''.join(f', {k}={v!r}' for k, v in self.given.items())})"

    # -- configuration ---------------------------------------------------------------------------------
    def config(self) -> _Config:
        ref = BigQueryRef.parse(self.uri)
        if ref.query is not None:
            raise InvalidInputError(f"destination {self.uri!r} is a query; a sink needs bq://project.dataset.table")
        opts = merge_options(ref.options, self.given, where=str(ref))
        unknown = sorted(set(opts) - self._OPTIONS)
        if unknown:
            raise InvalidInputError(f"unknown options for a BigQuery destination: {unknown}; known: "
                                    f"{sorted(self._OPTIONS)}")
        mode = str(opts.get("mode") or "merge").lower()
        parsed_as = str(opts.get("parsed_as") or "columns").lower()
        if mode not in MODES:
            raise InvalidInputError(f"mode={mode!r}: use one of {MODES}")
        if parsed_as not in PARSED_AS:
            raise InvalidInputError(f"parsed_as={parsed_as!r}: use one of {PARSED_AS}")
        partition_date = _date(opts.get("partition_date"))
        if mode == "replace_partition" and partition_date is None:
            raise InvalidInputError("mode=replace_partition needs partition_date=YYYY-MM-DD (e.g. {{ ds }})")
        staging = opts.get("staging_uri")
        if staging and not str(staging).startswith("gs://"):
            raise InvalidInputError(f"staging_uri={staging!r}: must be gs://bucket/prefix")
        try:
            deadline = float(opts.get("retry_deadline") or DEFAULT_RETRY_DEADLINE)
        except ValueError as exc:
            raise InvalidInputError(f"retry_deadline={opts['retry_deadline']!r} is not a number") from exc
        return _Config(ref=ref, mode=mode, conn_id=opts.get("conn_id"), parsed_as=parsed_as,
                       partition_field=str(opts.get("partition_field") or "partition_date"),
                       partition_date=partition_date, retry_deadline=deadline,
                       staging_uri=str(staging).rstrip("/") if staging else None)

    def columns(self, context: LandingContext, cfg: _Config | None = None) -> list[Column]:
        """Every column this sink writes, in table order (system, parsed, system, partition)."""
        cfg = cfg or self.config()
        parsed = _parsed_columns(context.response_schema, cfg.parsed_as)
        clash = sorted(c.name for c in parsed if c.name.lower() in SYSTEM_COLUMNS | {cfg.partition_field})
        if clash:
            raise InvalidInputError(f"response fields {clash} collide with the sink's own columns; use "
                                    f"parsed_as=record (one 'parsed' RECORD column) or rename them")
        partition = [Column(cfg.partition_field, DATE, REQUIRED)] if cfg.mode == "replace_partition" else []
        return [*_HEAD, *parsed, *_TAIL, *partition]

    # -- the Sink protocol -----------------------------------------------------------------------------
    def check(self, context: LandingContext) -> None:
        cfg = self.config()
        expected = self.columns(context, cfg)
        with _Session(cfg, "checking") as bq:
            table = bq.existing_table()
            if table is None:
                log.info("BigQuery table %s will be created at landing (%d columns)", bq.table_id, len(expected))
                return
            conflicts, _ = compare(expected, from_schema_fields(table.schema))
            _raise_conflicts(bq.table_id, conflicts, "checking")

    def write(self, rows: Iterable[ResultRow], context: LandingContext) -> dict[str, Any]:
        cfg = self.config()
        expected = self.columns(context, cfg)
        with _Session(cfg, "landing") as bq:
            table_columns = bq.ensure_table(expected)
            written = [next(t for t in table_columns if t.name.lower() == c.name.lower()) for c in expected]
            with tempfile.TemporaryFile(prefix="llmb-bq-") as staged:
                counts = _stage(staged, rows, context, cfg, expected)
                if cfg.mode == "append":
                    bq.delete_landing(context)
                    bq.load(staged, bq.table_id, table_columns, "WRITE_APPEND")
                else:
                    bq.load_and_merge(staged, written, context)
        landed = {"uri": f"bq://{bq.table_id}", "table": bq.table_id, "mode": cfg.mode, **counts}
        log.info("Landed %d rows (%d failed) in %s, mode %s, run %s", counts["rows"], counts["failed"],
                 bq.table_id, cfg.mode, context.run_id)
        return landed


def _parsed_columns(schema: dict[str, Any] | None, parsed_as: str) -> list[Column]:
    if not schema or parsed_as == "json":
        return [Column("parsed", JSON, description="the parsed answer")]
    try:
        fields = columns_from_json_schema(schema)
    except SchemaMappingError as exc:
        raise InvalidInputError(f"the response schema cannot become BigQuery columns: {exc}; use "
                                f"parsed_as=json") from exc
    if parsed_as == "record":
        return [Column("parsed", RECORD, fields=tuple(fields), description="the parsed answer")]
    return fields


def _raise_conflicts(table_id: str, conflicts: Sequence[str], action: str) -> None:
    if conflicts:
        raise InvalidInputError(f"BigQuery table {table_id} does not fit the results: " + "; ".join(conflicts)
                                + f". Change the table, the response schema, or the destination. "
                                  f"{_next_step(action)}")


def _date(value: Any) -> dt.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip()[:10])
    except ValueError as exc:
        raise InvalidInputError(f"partition_date={value!r} is not a date (YYYY-MM-DD)") from exc


def landing_identity(context: LandingContext) -> dict[str, Any]:
    """The columns that identify one landing: a task run (map_index -1 when not mapped)."""
    map_index = context.extra.get("map_index", -1)
    return {"dag_id": context.dag_id, "task_id": context.task_id, "run_id": context.run_id,
            "map_index": int(map_index if map_index is not None else -1)}


# -- staging the rows ----------------------------------------------------------------------------------
def _stage(fh: IO[bytes], rows: Iterable[ResultRow], context: LandingContext, cfg: _Config,
           columns: Sequence[Column]) -> dict[str, int]:
    """Write one NDJSON record per row to ``fh``; returns counts."""
    identity = landing_identity(context)
    landed_at = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    fixed = {**identity, "landed_at": landed_at}
    if cfg.partition_date is not None and cfg.mode == "replace_partition":
        fixed[cfg.partition_field] = cfg.partition_date.isoformat()
    parsed = [c for c in columns if c.name not in SYSTEM_COLUMNS and c.name != cfg.partition_field]
    spread = bool(context.response_schema) and cfg.parsed_as == "columns"
    stats = CoercionStats()
    counts: Counter[str] = Counter()
    for row in rows:
        record = {**_system_values(row), **_parsed_values(row, parsed, spread, stats), **fixed}
        fh.write((json.dumps({k: v for k, v in record.items() if v is not None}, ensure_ascii=False,
                             default=str) + "\n").encode())
        counts[row.status.value] += 1
    if stats.nulled:
        log.warning("%d parsed value(s) did not fit their column and land as NULL (the raw answer is in "
                    "'output'): %s", sum(stats.nulled.values()), stats.nulled)
    fh.flush()
    total = sum(counts.values())
    return {"rows": total, "succeeded": counts[RowStatus.SUCCEEDED.value], "failed": counts[RowStatus.FAILED.value]}


def _system_values(row: ResultRow) -> dict[str, Any]:
    error = row.error or {}
    return {"key": row.key, "status": row.status.value, "error_code": error.get("code"),
            "error_message": error.get("message"), "output": row.output,
            "input_tokens": row.usage.input_tokens, "output_tokens": row.usage.output_tokens,
            "cached_input_tokens": row.usage.cached_input_tokens, "model": row.model, "batch_id": row.batch_id,
            "custom_id": row.custom_id, "attempts": row.attempts, "cached": getattr(row, "cached", None),
            "extra": row.extra or None}


def _parsed_values(row: ResultRow, parsed: Sequence[Column], spread: bool, stats: CoercionStats) -> dict[str, Any]:
    """One value per parsed column (``spread``: a column per top-level field), else one ``parsed``."""
    if row.parsed is None:
        return {}
    if spread:
        values = row.parsed if isinstance(row.parsed, Mapping) else {}
        return {c.name: coerce(values.get(c.name), c, stats) for c in parsed}
    return {"parsed": coerce(row.parsed, parsed[0], stats)}


# -- talking to BigQuery -------------------------------------------------------------------------------
class _Session:
    """One sink call's client, table reference, retry policy and error translation."""

    def __init__(self, cfg: _Config, action: str) -> None:
        self.cfg, self.action = cfg, action

    def __enter__(self) -> _Session:
        from airflow_llm_batch.google import bigquery_client, google_settings

        self.settings = google_settings(self.cfg.conn_id)
        self.table_id = str(self.cfg.ref)
        try:
            self.client = bigquery_client(self.settings, self.cfg.ref.project)
        except LLMBatchError:
            raise
        except Exception as exc:  # e.g. no Application Default Credentials on this worker
            translated = _translate(exc, self.action, self.table_id, self.settings.describe("bigquery"))
            if translated is None:
                raise
            raise translated from exc
        from google.cloud.bigquery import DEFAULT_RETRY

        self.ref = self.cfg.ref.with_project(self.client.project)
        self.table_id = self.ref.table_id
        self.retry = DEFAULT_RETRY.with_deadline(self.cfg.retry_deadline)
        self.timeout = min(60.0, self.cfg.retry_deadline)
        self.location: str | None = None
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc is not None and not isinstance(exc, LLMBatchError):
            translated = _translate(exc, self.action, self.table_id, self.settings.describe("bigquery"))
            if translated is not None:
                raise translated from exc

    # -- tables
    def existing_table(self) -> Any:
        from google.api_core.exceptions import NotFound

        dataset_id = f"{self.ref.project}.{self.ref.dataset}"
        try:
            dataset = self.client.get_dataset(dataset_id, retry=self.retry, timeout=self.timeout)
        except NotFound as exc:
            raise InvalidInputError(f"BigQuery dataset {dataset_id} does not exist "
                                    f"({self.settings.describe('bigquery')}); create it first. "
                                    f"{_next_step(self.action)}") from exc
        self.location = dataset.location
        try:
            return self.client.get_table(self.table_id, retry=self.retry, timeout=self.timeout)
        except NotFound:
            return None

    def ensure_table(self, expected: Sequence[Column]) -> list[Column]:
        """Create the table or add missing columns; returns the table's columns."""
        from google.cloud import bigquery

        table = self.existing_table()
        if table is None:
            new = bigquery.Table(self.table_id, schema=to_schema_fields(expected))
            if self.cfg.mode == "replace_partition":
                new.time_partitioning = bigquery.TimePartitioning(type_="DAY", field=self.cfg.partition_field)
            table = self.client.create_table(new, exists_ok=True, retry=self.retry, timeout=self.timeout)
            log.info("Created BigQuery table %s (%d columns)", self.table_id, len(expected))
            return from_schema_fields(table.schema)
        existing = from_schema_fields(table.schema)
        conflicts, missing = compare(expected, existing)
        _raise_conflicts(self.table_id, conflicts, self.action)
        if missing:
            table = self._add_columns(table, existing, [replace(c, mode=NULLABLE) if c.mode == REQUIRED else c
                                                        for c in missing])
        return from_schema_fields(table.schema)

    def _add_columns(self, table: Any, existing: Sequence[Column], missing: Sequence[Column]) -> Any:
        """New top-level columns by DDL (``ADD COLUMN IF NOT EXISTS``: idempotent), new RECORD
        sub-fields by a schema patch (DDL cannot add those); then the schema is patched if the DDL
        did not show up in the metadata (BigQuery-compatible engines such as the emulator)."""
        have = {c.name.lower() for c in existing}
        for col in (c for c in missing if c.name.lower() not in have):
            self.query(f"ALTER TABLE `{self.table_id}` ADD COLUMN IF NOT EXISTS `{col.name}` {_ddl_type(col)}", {})
        table = self.client.get_table(self.table_id, retry=self.retry, timeout=self.timeout)
        wanted = with_additions(existing, missing)
        if compare(wanted, from_schema_fields(table.schema))[1]:
            table.schema = to_schema_fields(with_additions(from_schema_fields(table.schema), missing))
            table = self.client.update_table(table, ["schema"], retry=self.retry, timeout=self.timeout)
        log.info("Added %d column(s) to %s: %s", len(missing), self.table_id, [c.name for c in missing])
        return table

    # -- jobs
    def load(self, staged: IO[bytes], table_id: str, columns: Sequence[Column], disposition: str) -> None:
        from google.cloud import bigquery

        config = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
                                        schema=to_schema_fields(columns), write_disposition=disposition,
                                        create_disposition="CREATE_NEVER")
        if self.cfg.staging_uri:
            job = self._load_via_gcs(staged, table_id, config)
        else:
            staged.seek(0)
            job = self.client.load_table_from_file(staged, table_id, job_config=config, rewind=True,
                                                   location=self.location, timeout=self.timeout)
        job.result(retry=self.retry, timeout=JOB_TIMEOUT)
        log.info("Load job %s: %s rows into %s", job.job_id, job.output_rows, table_id)

    def _load_via_gcs(self, staged: IO[bytes], table_id: str, config: Any) -> Any:
        from airflow_llm_batch.google.gcs import GcsObject, atomic_gcs_writer

        name = hashlib.sha256(f"{table_id}|{dt.datetime.now(dt.timezone.utc).isoformat()}".encode()).hexdigest()[:20]
        obj = GcsObject.parse(f"{self.cfg.staging_uri}/llmb-{name}.ndjson", self.cfg.conn_id)
        staged.seek(0)
        with atomic_gcs_writer(obj) as out:
            while chunk := staged.read(1 << 20):
                out.write(chunk)
        try:
            job = self.client.load_table_from_uri(str(obj), table_id, job_config=config, location=self.location,
                                                  retry=self.retry, timeout=self.timeout)
            job.result(retry=self.retry, timeout=JOB_TIMEOUT)
            return job
        finally:
            with contextlib.suppress(Exception):
                obj.blob().delete()

    def query(self, sql: str, params: Mapping[str, Any]) -> int:
        from google.cloud import bigquery

        kinds = {bool: "BOOL", int: "INT64", float: "FLOAT64", str: "STRING", dt.date: "DATE"}
        config = bigquery.QueryJobConfig(query_parameters=[
            bigquery.ScalarQueryParameter(name, kinds[type(value)], value) for name, value in params.items()])
        job = self.client.query(sql, job_config=config, location=self.location, retry=self.retry,
                                timeout=self.timeout)
        job.result(retry=self.retry, timeout=JOB_TIMEOUT)
        return int(job.num_dml_affected_rows or 0)

    def delete_landing(self, context: LandingContext) -> None:
        identity = landing_identity(context)
        where = " AND ".join(f"`{k}` = @{k}" for k in identity)
        deleted = self.query(f"DELETE FROM `{self.table_id}` WHERE {where}", identity)
        log.info("Deleted %d earlier row(s) of this landing from %s", deleted, self.table_id)

    def load_and_merge(self, staged: IO[bytes], columns: Sequence[Column], context: LandingContext) -> None:
        staging_id = self._staging_table(columns, context)
        try:
            self.load(staged, staging_id, columns, "WRITE_APPEND")
            sql, params = _merge_sql(self.table_id, staging_id, columns, context, self.cfg)
            affected = self.query(sql, params)
            log.info("MERGE into %s (mode %s): %d row(s) inserted, updated or deleted", self.table_id,
                     self.cfg.mode, affected)
        finally:
            with contextlib.suppress(Exception):
                self.client.delete_table(staging_id, not_found_ok=True, timeout=self.timeout)

    def _staging_table(self, columns: Sequence[Column], context: LandingContext) -> str:
        from google.cloud import bigquery

        basis = json.dumps(landing_identity(context), sort_keys=True)
        suffix = hashlib.sha256(basis.encode()).hexdigest()[:16]
        staging_id = f"{self.ref.project}.{self.ref.dataset}.{self.ref.table}__llmb_stage_{suffix}"
        self.client.delete_table(staging_id, not_found_ok=True, retry=self.retry, timeout=self.timeout)
        table = bigquery.Table(staging_id, schema=to_schema_fields(columns))
        table.expires = dt.datetime.now(dt.timezone.utc) + STAGING_EXPIRY
        self.client.create_table(table, retry=self.retry, timeout=self.timeout)
        return staging_id


def _ddl_type(col: Column) -> str:
    base = (f"STRUCT<{', '.join(f'`{f.name}` {_ddl_type(f)}' for f in col.fields)}>" if col.type == RECORD
            else col.type)
    return f"ARRAY<{base}>" if col.repeated else base


def _merge_sql(target: str, staging: str, columns: Sequence[Column], context: LandingContext,
               cfg: _Config) -> tuple[str, dict[str, Any]]:
    names = [f"`{c.name}`" for c in columns]
    insert = (f"WHEN NOT MATCHED BY TARGET THEN INSERT ({', '.join(names)}) "
              f"VALUES ({', '.join('S.' + n for n in names)})")
    if cfg.mode == "replace_partition":
        assert cfg.partition_date is not None
        field = f"`{cfg.partition_field}`"
        return (f"MERGE `{target}` T USING `{staging}` S ON FALSE "
                f"WHEN NOT MATCHED BY SOURCE AND T.{field} = @partition_date THEN DELETE {insert}",
                {"partition_date": cfg.partition_date})
    identity = landing_identity(context)
    on = " AND ".join(f"T.`{k}` = S.`{k}`" for k in ("key", *identity))
    updates = ", ".join(f"{n} = S.{n}" for n, c in zip(names, columns, strict=True) if c.name not in ("key", *identity))
    mine = " AND ".join(f"T.`{k}` = @{k}" for k in identity)
    return (f"MERGE `{target}` T USING `{staging}` S ON {on} "
            f"WHEN MATCHED THEN UPDATE SET {updates} {insert} "
            f"WHEN NOT MATCHED BY SOURCE AND {mine} THEN DELETE", identity)


def _translate(exc: BaseException, action: str, table_id: str, where: str) -> LLMBatchError | None:
    """A Google/HTTP exception -> our error, with what to do next (never credentials); None for others
    (e.g. the workspace failing while the rows are staged), which keep their own type."""
    import requests
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    after, detail = _next_step(action), _short(exc)
    unavailable = (gexc.RetryError, gexc.ServerError, gexc.TooManyRequests, requests.exceptions.RequestException,
                   ConnectionError, TimeoutError)
    if isinstance(exc, unavailable):
        return BigQueryUnavailableError(f"BigQuery unavailable while {action} {table_id} ({where}): {detail}. {after}")
    if isinstance(exc, (gexc.GoogleAPIError, auth_exc.GoogleAuthError)):
        return BigQueryLandingError(f"BigQuery refused {action} {table_id} ({where}): {detail}. {after}")
    return None


def _next_step(action: str) -> str:
    if action == "landing":
        return ("The results are kept in the task's workspace; a retry of the task lands them again without "
                "resubmitting any batch.")
    return "Nothing was submitted."


def _short(exc: BaseException) -> str:
    errors = getattr(exc, "errors", None) or []
    extra = "; ".join(str(e.get("message", e))[:300] for e in errors[:3] if isinstance(e, Mapping))
    text = str(exc).splitlines()[0][:500] if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}: {text}" + (f" [{extra}]" if extra and extra not in text else "")


__all__ = ["MODES", "SYSTEM_COLUMNS", "BigQueryLandingError", "BigQuerySink", "BigQueryUnavailableError",
           "landing_identity"]
