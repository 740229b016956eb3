"""Rows from BigQuery tables and queries (bqemulator), paged, checked before anything is submitted."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.google.emulators import LocalBigQuery
from airflow_llm_batch.google.uris import BigQueryRef
from airflow_llm_batch.sources.bigquery import bigquery_query_uri, bigquery_rows
from airflow_llm_batch.sources.rows import rows_factory
from tests.gcp.fixtures import unique_name

pytestmark = pytest.mark.usefixtures("gcp_connection")


@pytest.fixture(scope="module")
def tickets(bq_emulator: LocalBigQuery, gcp_connection: str) -> str:
    """A 2,500-row table loaded with a load job."""
    from google.cloud import bigquery

    client: Any = bq_emulator.client()
    dataset = client.create_dataset(unique_name("src"))
    table = f"{bq_emulator.project}.{dataset.dataset_id}.tickets"
    data = "".join(json.dumps({"ticket_id": f"T{i:05d}", "subject": f"subject & {i}", "n": i,
                               "day": "2026-11-21" if i % 2 else "2026-11-20"}) + "\n" for i in range(2500))
    schema = [bigquery.SchemaField("ticket_id", "STRING"), bigquery.SchemaField("subject", "STRING"),
              bigquery.SchemaField("n", "INT64"), bigquery.SchemaField("day", "DATE")]
    config = bigquery.LoadJobConfig(source_format="NEWLINE_DELIMITED_JSON", schema=schema)
    client.load_table_from_file(io.BytesIO(data.encode()), table, job_config=config).result()
    return table


def test_table_rows_are_read_in_pages_each_time_the_factory_is_called(tickets: str) -> None:
    factory = rows_factory(f"bq://{tickets}?page_size=1000")
    first, second = list(factory()), list(factory())
    assert len(first) == 2500 and first == second
    assert first[7] == {"ticket_id": "T00007", "subject": "subject & 7", "n": 7,
                        "day": __import__("datetime").date(2026, 11, 21)}


def test_table_columns_option_selects_columns(tickets: str) -> None:
    rows = list(bigquery_rows(f"bq://{tickets}", columns="ticket_id, n")())
    assert set(rows[0]) == {"ticket_id", "n"}
    with pytest.raises(InvalidInputError, match=r"no column\(s\) \['nope'\]"):
        bigquery_rows(f"bq://{tickets}?columns=ticket_id,nope")


def test_query_runs_once_and_pages_through_its_result(tickets: str) -> None:
    sql = f"SELECT ticket_id, subject FROM `{tickets}` WHERE day = DATE '2026-11-21' AND subject LIKE '%&%' " \
          f"ORDER BY ticket_id"
    uri = bigquery_query_uri(sql, project="test-project", page_size=500)
    assert BigQueryRef.parse(uri).query == sql
    factory = rows_factory(uri)
    first = list(factory())
    job = factory._job  # type: ignore[attr-defined]
    assert list(factory()) == first and factory._job is job  # type: ignore[attr-defined]
    assert len(first) == 1250 and first[0] == {"ticket_id": "T00001", "subject": "subject & 1"}


def test_sources_that_do_not_exist_fail_before_anything_is_submitted(tickets: str) -> None:
    dataset = tickets.rsplit(".", 1)[0]
    with pytest.raises(InvalidInputError, match=r"BigQuery source table .*\.missing: .*nothing was submitted"):
        rows_factory(f"bq://{dataset}.missing")
    with pytest.raises(InvalidInputError, match="BigQuery source query"):
        rows_factory(bigquery_query_uri(f"SELECT * FROM `{dataset}.missing`"))
    with pytest.raises(InvalidInputError, match=r"expected bq://project\.dataset\.table"):
        rows_factory("bq://not_a_table")
    with pytest.raises(InvalidInputError, match="unknown options"):
        rows_factory(f"bq://{tickets}?colour=blue")
    with pytest.raises(InvalidInputError, match="Airflow connection 'nope' does not exist"):
        rows_factory(f"bq://{tickets}?conn_id=nope")


def test_query_uri_escapes_only_what_the_option_syntax_needs() -> None:
    sql = "SELECT a + b FROM `p.d.t` WHERE s LIKE '%x&y%' AND d = '{{ ds }}'"
    uri = bigquery_query_uri(sql, project="my-project")
    assert "{{ ds }}" in uri and "a + b" in uri and "%25x%26y%25" in uri
    ref = BigQueryRef.parse(uri)
    assert (ref.project, ref.query, ref.table) == ("my-project", sql, None)
    assert BigQueryRef.parse(bigquery_query_uri("SELECT 1")).project is None
