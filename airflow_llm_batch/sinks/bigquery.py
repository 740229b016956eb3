"""Results into a BigQuery table through a load job (never streaming inserts), idempotent per landing.

The rows are staged as NDJSON (a local temporary file, or ``staging_uri`` on GCS for very large
runs) and loaded with a load job; the table is created when missing, with typed columns for the
parsed answer (see :mod:`airflow_llm_batch.google.bq_schema`). Every row records who landed it:
``dag_id, task_id, run_id, map_index`` (one task run, or one mapped instance of it), and the path that
answered it (``answered_by``: batch, realtime or cache). Landing the same task run again (a retry, a
cleared task) never adds a second copy. A column the table lacks (a new response field, or
``answered_by`` in a table created by an older version) is added as NULLABLE before the load
(``ALTER TABLE ... ADD COLUMN IF NOT EXISTS``); rows landed before read NULL there.

Modes (what one row stands for; details and SQL in :mod:`airflow_llm_batch.sinks.bigquery_modes`):

* ``merge`` (default): one row per ``key`` for the task; the latest run's answer wins (one atomic
  ``MERGE`` from a staging table) and the row carries that run's ``run_id``.
* ``history``: one row per ``key`` per run (and map index): each run keeps its own copy.
* ``append``: like ``history``, but ``DELETE`` then load, without a staging table. Cheaper but not
  atomic: between the two steps readers miss this run's rows.
* ``replace_partition``: the table is partitioned by day on ``partition_field`` (a DATE column,
  default ``partition_date``) and the landing replaces the WHOLE partition of ``partition_date``
  (e.g. ``{{ ds }}``) in one ``MERGE``, whichever run or task wrote it before: a manual re-run of a
  day, with a new run_id, does not double that day.

Example::

    LLMBatchOperator(..., destination="bq://my-project.support.ticket_triage")  # mode=merge
    # or a Sink object with keyword options:
    BigQuerySink("bq://my-project.support.ticket_triage", mode="replace_partition",
                 partition_date="{{ ds }}", conn_id="google_cloud_default")
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any, ClassVar

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.google.bq_schema import (
    BOOL,
    DATE,
    INT64,
    JSON,
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
)
from airflow_llm_batch.google.uris import BigQueryRef, merge_options
from airflow_llm_batch.pipeline.types import ResultRow, RowStatus
from airflow_llm_batch.sinks.base import LandingContext
from airflow_llm_batch.sinks.bigquery_modes import DEFAULT_MODE, MODES, landing_identity
from airflow_llm_batch.sinks.bigquery_session import (
    BigQueryLandingError,
    BigQueryUnavailableError,
    LandingConfig,
    Session,
    raise_conflicts,
)

log = logging.getLogger(__name__)

PARSED_AS = ("columns", "record", "json")
DEFAULT_RETRY_DEADLINE = 120.0

_HEAD = (Column("key", STRING, REQUIRED), Column("status", STRING, REQUIRED))
_TAIL = (
    Column("error_code", STRING), Column("error_message", STRING), Column("output", STRING),
    Column("input_tokens", INT64), Column("output_tokens", INT64), Column("cached_input_tokens", INT64),
    Column("model", STRING), Column("batch_id", STRING), Column("custom_id", STRING), Column("attempts", INT64),
    Column("cached", BOOL, description="answered from the request cache (not paid again)"),
    Column("answered_by", STRING, description="the path that answered the row: batch, realtime or cache"),
    Column("extra", JSON, description="carried input columns and notes such as finish_reason"),
    Column("dag_id", STRING, REQUIRED), Column("task_id", STRING, REQUIRED), Column("run_id", STRING, REQUIRED),
    Column("map_index", INT64, REQUIRED), Column("landed_at", TIMESTAMP, REQUIRED),
)
SYSTEM_COLUMNS = frozenset(c.name for c in (*_HEAD, *_TAIL))


class BigQuerySink:
    """Land results in ``bq://project.dataset.table`` (a load job, then MERGE/DELETE per ``mode``).

    Options (keyword arguments, or ``?name=value`` after the URI):

    * ``mode``: ``merge`` (default: one row per key for the task, the latest run's answer) |
      ``history`` (one row per key per run) | ``append`` | ``replace_partition`` (module docstring).
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
                         destination="bq://my-project.support.triage?mode=history")
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
    def config(self) -> LandingConfig:
        ref = BigQueryRef.parse(self.uri)
        if ref.query is not None:
            raise InvalidInputError(f"destination {self.uri!r} is a query; a sink needs bq://project.dataset.table")
        opts = merge_options(ref.options, self.given, where=str(ref))
        unknown = sorted(set(opts) - self._OPTIONS)
        if unknown:
            raise InvalidInputError(f"unknown options for a BigQuery destination: {unknown}; known: "
                                    f"{sorted(self._OPTIONS)}")
        mode = str(opts.get("mode") or DEFAULT_MODE).lower()
        parsed_as = str(opts.get("parsed_as") or "columns").lower()
        if mode not in MODES:
            raise InvalidInputError(f"mode={mode!r}: use one of {sorted(MODES)}")
        if parsed_as not in PARSED_AS:
            raise InvalidInputError(f"parsed_as={parsed_as!r}: use one of {PARSED_AS}")
        partition_date = _date(opts.get("partition_date"))
        if MODES[mode].partitioned and partition_date is None:
            raise InvalidInputError("mode=replace_partition needs partition_date=YYYY-MM-DD (e.g. {{ ds }})")
        staging = opts.get("staging_uri")
        if staging and not str(staging).startswith("gs://"):
            raise InvalidInputError(f"staging_uri={staging!r}: must be gs://bucket/prefix")
        try:
            deadline = float(opts.get("retry_deadline") or DEFAULT_RETRY_DEADLINE)
        except ValueError as exc:
            raise InvalidInputError(f"retry_deadline={opts['retry_deadline']!r} is not a number") from exc
        return LandingConfig(ref=ref, mode=MODES[mode], conn_id=opts.get("conn_id"), parsed_as=parsed_as,
                             partition_field=str(opts.get("partition_field") or "partition_date"),
                             partition_date=partition_date, retry_deadline=deadline,
                             staging_uri=str(staging).rstrip("/") if staging else None)

    def columns(self, context: LandingContext, cfg: LandingConfig | None = None) -> list[Column]:
        """Every column this sink writes, in table order (system, parsed, system, partition)."""
        cfg = cfg or self.config()
        parsed = _parsed_columns(context.response_schema, cfg.parsed_as)
        clash = sorted(c.name for c in parsed if c.name.lower() in SYSTEM_COLUMNS | {cfg.partition_field})
        if clash:
            raise InvalidInputError(f"response fields {clash} collide with the sink's own columns; use "
                                    f"parsed_as=record (one 'parsed' RECORD column) or rename them")
        partition = [Column(cfg.partition_field, DATE, REQUIRED)] if cfg.mode.partitioned else []
        return [*_HEAD, *parsed, *_TAIL, *partition]

    # -- the Sink protocol -----------------------------------------------------------------------------
    def check(self, context: LandingContext) -> None:
        cfg = self.config()
        expected = self.columns(context, cfg)
        with Session(cfg, "checking") as bq:
            table = bq.existing_table()
            if table is None:
                log.info("BigQuery table %s will be created at landing (%d columns)", bq.table_id, len(expected))
                return
            conflicts, _ = compare(expected, from_schema_fields(table.schema))
            raise_conflicts(bq.table_id, conflicts, "checking")

    def write(self, rows: Iterable[ResultRow], context: LandingContext) -> dict[str, Any]:
        cfg = self.config()
        expected = self.columns(context, cfg)
        with Session(cfg, "landing") as bq:
            table_columns = bq.ensure_table(expected)
            written = [next(t for t in table_columns if t.name.lower() == c.name.lower()) for c in expected]
            with tempfile.TemporaryFile(prefix="llmb-bq-") as staged:
                counts = _stage(staged, rows, context, cfg, expected)
                if cfg.mode.staged:
                    bq.load_and_merge(staged, written, context)
                else:
                    bq.delete_landing(context)
                    bq.load(staged, bq.table_id, table_columns, "WRITE_APPEND")
        landed = {"uri": f"bq://{bq.table_id}", "table": bq.table_id, "mode": cfg.mode.name, **counts}
        log.info("Landed %d rows (%d failed) in %s, mode %s, run %s, map index %d", counts["rows"],
                 counts["failed"], bq.table_id, cfg.mode.name, context.run_id, landing_identity(context)["map_index"])
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


def _date(value: Any) -> dt.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip()[:10])
    except ValueError as exc:
        raise InvalidInputError(f"partition_date={value!r} is not a date (YYYY-MM-DD)") from exc


# -- staging the rows ----------------------------------------------------------------------------------
def _stage(fh: IO[bytes], rows: Iterable[ResultRow], context: LandingContext, cfg: LandingConfig,
           columns: Sequence[Column]) -> dict[str, int]:
    """Write one NDJSON record per row to ``fh``; returns counts."""
    identity = landing_identity(context)
    landed_at = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    fixed = {**identity, "landed_at": landed_at}
    if cfg.partition_date is not None and cfg.mode.partitioned:
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
            "answered_by": row.answered_by, "extra": row.extra or None}


def _parsed_values(row: ResultRow, parsed: Sequence[Column], spread: bool, stats: CoercionStats) -> dict[str, Any]:
    """One value per parsed column (``spread``: a column per top-level field), else one ``parsed``."""
    if row.parsed is None:
        return {}
    if spread:
        values = row.parsed if isinstance(row.parsed, Mapping) else {}
        return {c.name: coerce(values.get(c.name), c, stats) for c in parsed}
    return {"parsed": coerce(row.parsed, parsed[0], stats)}


__all__ = ["MODES", "SYSTEM_COLUMNS", "BigQueryLandingError", "BigQuerySink", "BigQueryUnavailableError",
           "landing_identity"]
