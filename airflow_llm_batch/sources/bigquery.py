"""Rows from BigQuery: a table (``bq://project.dataset.table``) or a query (``bq://project?query=...``).

Rows are read page by page (``page_size``, default 10,000), never all at once. The source is
checked when the operator builds its row factory, before anything is submitted: a missing table,
an unknown column or a query that does not compile raises InvalidInputError.

A query runs once per task try; the engine's second pass (the retry check) pages through the same
job's results again instead of re-running it. Between tries the query runs anew, so it must return
the same rows (a retry compares them, as a set: order does not matter, with those already
submitted). A table is read in BigQuery's storage order.

Options (keyword arguments or ``?name=value``): ``conn_id``, ``page_size``, ``columns``
(comma-separated, tables only), ``location`` (queries outside the US multi-region).

Row values keep BigQuery's Python types (``datetime``, ``date``, ``Decimal``...); prompts render
them with ``str()``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.google.uris import BigQueryRef, bigquery_query_uri, merge_options

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 10_000
_OPTIONS = frozenset({"conn_id", "page_size", "columns", "location"})

RowsFactory = Callable[[], Iterable[Mapping[str, Any]]]


def bigquery_rows(uri: str, **options: Any) -> RowsFactory:
    """A row factory for a ``bq://`` table or query URI; checks the source exists first.

    Example::

        rows = bigquery_rows("bq://my-project.support.tickets", columns="ticket_id,subject,body")
        rows = bigquery_rows(bigquery_query_uri("SELECT * FROM `p.d.t` ORDER BY id", project="p"))
    """
    ref = BigQueryRef.parse(uri)
    opts = merge_options(ref.options, options, where=str(ref))
    unknown = sorted(set(opts) - _OPTIONS)
    if unknown:
        raise InvalidInputError(f"unknown options for a BigQuery source: {unknown}; known: {sorted(_OPTIONS)}")
    try:
        page_size = int(opts.get("page_size") or DEFAULT_PAGE_SIZE)
    except ValueError as exc:
        raise InvalidInputError(f"page_size={opts['page_size']!r} is not a number") from exc
    client = _client(ref, opts.get("conn_id"))
    if ref.query is not None:
        if opts.get("columns"):
            raise InvalidInputError("columns= applies to tables; select the columns in the query instead")
        return _QueryRows(client, ref.query, page_size, opts.get("location"))
    return _table_rows(client, ref.with_project(client.project), page_size, opts.get("columns"))


def _client(ref: BigQueryRef, conn_id: str | None) -> Any:
    from airflow_llm_batch.google import bigquery_client, google_settings

    return bigquery_client(google_settings(conn_id), ref.project)


def _check(exc: Exception, what: str) -> None:
    """Raise InvalidInputError for a source that is wrong (missing, bad SQL, no access); else return."""
    from google.api_core import exceptions as gexc

    if isinstance(exc, (gexc.NotFound, gexc.BadRequest, gexc.Forbidden)):
        message = str(exc).splitlines()[0][:500]
        raise InvalidInputError(f"BigQuery source {what}: {message}; nothing was submitted.") from exc


def _table_rows(client: Any, ref: BigQueryRef, page_size: int, columns: str | None) -> RowsFactory:
    from google.cloud.bigquery import DEFAULT_RETRY

    retry = DEFAULT_RETRY.with_deadline(120)
    try:
        table = client.get_table(ref.table_id, retry=retry)
    except Exception as exc:
        _check(exc, f"table {ref.table_id}")
        raise
    selected = None
    if columns:
        wanted = [c.strip() for c in str(columns).split(",") if c.strip()]
        by_name = {f.name.lower(): f for f in table.schema}
        missing = [c for c in wanted if c.lower() not in by_name]
        if missing:
            raise InvalidInputError(f"BigQuery table {ref.table_id} has no column(s) {missing}; it has "
                                    f"{[f.name for f in table.schema]}. Nothing was submitted.")
        selected = [by_name[c.lower()] for c in wanted]
    log.info("Rows from BigQuery table %s: %s rows, pages of %d", ref.table_id, table.num_rows, page_size)

    def rows() -> Iterator[Mapping[str, Any]]:
        pages = client.list_rows(table, selected_fields=selected, page_size=page_size, retry=retry)
        for row in pages:
            yield dict(row.items())

    return rows


class _QueryRows:
    """Runs the query on first use (after a dry run at construction), then pages through its result."""

    def __init__(self, client: Any, sql: str, page_size: int, location: str | None) -> None:
        from google.cloud import bigquery

        self.client, self.sql, self.page_size, self.location = client, sql, page_size, location
        self._job: Any = None
        try:
            dry = client.query(sql, job_config=bigquery.QueryJobConfig(dry_run=True, use_query_cache=False),
                               location=location)
        except Exception as exc:
            _check(exc, "query")
            raise
        log.info("Rows from a BigQuery query (dry run: %s bytes to process)", dry.total_bytes_processed)

    def __call__(self) -> Iterator[Mapping[str, Any]]:
        try:
            if self._job is None:
                self._job = self.client.query(self.sql, location=self.location)
                log.info("BigQuery query job %s started", self._job.job_id)
            pages = self._job.result(page_size=self.page_size)
        except Exception as exc:
            self._job = None
            _check(exc, "query")
            raise
        for row in pages:
            yield dict(row.items())


__all__ = ["DEFAULT_PAGE_SIZE", "bigquery_query_uri", "bigquery_rows"]
