"""Talking to BigQuery for the sink: one call's client, table, load and query jobs, retries, and the
translation of Google errors into ours (with what to do next, never credentials)."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import IO, Any

from airflow_llm_batch.exceptions import InvalidInputError, LLMBatchError
from airflow_llm_batch.google.bq_schema import (
    NULLABLE,
    RECORD,
    REQUIRED,
    Column,
    compare,
    from_schema_fields,
    to_schema_fields,
    with_additions,
)
from airflow_llm_batch.google.uris import BigQueryRef
from airflow_llm_batch.sinks.base import LandingContext
from airflow_llm_batch.sinks.bigquery_modes import LandingMode, delete_landing_sql, landing_identity, merge_sql

log = logging.getLogger(__name__)

JOB_TIMEOUT = 3600.0
STAGING_EXPIRY = dt.timedelta(days=1)


class BigQueryLandingError(LLMBatchError):
    """BigQuery refused or could not take the results; they stay in the workspace for a retry."""


class BigQueryUnavailableError(BigQueryLandingError):
    """BigQuery could not be reached (network, 5xx) within the retry deadline."""


@dataclass(frozen=True)
class LandingConfig:
    """A BigQuery destination's options, checked (the sink parses them from the URI and keywords)."""

    ref: BigQueryRef
    mode: LandingMode
    conn_id: str | None
    parsed_as: str
    partition_field: str
    partition_date: dt.date | None
    retry_deadline: float
    staging_uri: str | None


def raise_conflicts(table_id: str, conflicts: Sequence[str], action: str) -> None:
    """InvalidInputError naming every column where the table and the results disagree (if any)."""
    if conflicts:
        raise InvalidInputError(f"BigQuery table {table_id} does not fit the results: " + "; ".join(conflicts)
                                + f". Change the table, the response schema, or the destination. "
                                  f"{_next_step(action)}")


class Session:
    """One sink call's client, table reference, retry policy and error translation."""

    def __init__(self, cfg: LandingConfig, action: str) -> None:
        self.cfg, self.action = cfg, action

    def __enter__(self) -> Session:
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
            if self.cfg.mode.partitioned:
                new.time_partitioning = bigquery.TimePartitioning(type_="DAY", field=self.cfg.partition_field)
            table = self.client.create_table(new, exists_ok=True, retry=self.retry, timeout=self.timeout)
            log.info("Created BigQuery table %s (%d columns)", self.table_id, len(expected))
            return from_schema_fields(table.schema)
        existing = from_schema_fields(table.schema)
        conflicts, missing = compare(expected, existing)
        raise_conflicts(self.table_id, conflicts, self.action)
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
        deleted = self.query(*delete_landing_sql(self.table_id, context))
        log.info("Deleted %d earlier row(s) of this landing from %s", deleted, self.table_id)

    def load_and_merge(self, staged: IO[bytes], columns: Sequence[Column], context: LandingContext) -> None:
        staging_id = self._staging_table(columns, context)
        try:
            self.load(staged, staging_id, columns, "WRITE_APPEND")
            sql, params = merge_sql(self.table_id, staging_id, columns, context, self.cfg.mode,
                                    partition_field=self.cfg.partition_field,
                                    partition_date=self.cfg.partition_date)
            affected = self.query(sql, params)
            log.info("MERGE into %s (mode %s): %d row(s) inserted, updated or deleted", self.table_id,
                     self.cfg.mode.name, affected)
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



__all__ = ["BigQueryLandingError", "BigQueryUnavailableError", "LandingConfig", "Session", "raise_conflicts"]
