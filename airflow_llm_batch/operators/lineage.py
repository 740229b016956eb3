"""OpenLineage facets of the operators: the datasets a task read its rows from and landed its results in,
so a data team's lineage graph shows the LLM step between its tables and files.

Names follow the OpenLineage naming spec, as Airflow's own providers write them:

- ``bq://project.dataset.table`` -> namespace ``bigquery``, name ``project.dataset.table``; a
  ``bq://project?query=...`` source -> one input per table the query reads (parsed by openlineage-sql,
  tables without a project get the URI's), and the query as the ``sql`` job facet;
- ``gs://bucket/path`` -> namespace ``gs://bucket``, name ``path`` (``s3://``, ``abfs://``... alike);
- ``file:///path`` (or a plain path) -> namespace ``file``, name ``/path``; ``file://host/path`` ->
  namespace ``file://host``.

Rows given as a list (or an upstream XCom) and results returned through XCom are no dataset. The
OpenLineage classes are imported when a facet is built, so the core install works without
apache-airflow-providers-openlineage (``pip install 'airflow-llm-batch[openlineage]'``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from airflow_llm_batch.google.uris import BigQueryRef, split_options

BIGQUERY_NAMESPACE = "bigquery"


def dataset_names(uri: Any) -> list[tuple[str, str]]:
    """The (namespace, name) pairs of the datasets a rows source or destination URI stands for.

    Example: ``dataset_names("gs://acme/tickets/2026-12-01.jsonl") == [("gs://acme", "tickets/2026-12-01.jsonl")]``
    """
    if not isinstance(uri, str) or not uri.strip():
        return []  # a list of rows, an XCom, a Sink object: no named dataset
    text = uri.strip()
    scheme = text.split("://", 1)[0].lower() if "://" in text else "file"
    if scheme == "bq":
        ref = BigQueryRef.parse(text)
        if ref.query is not None:
            return [(BIGQUERY_NAMESPACE, name) for name in query_tables(ref.query, ref.project)]
        return [(BIGQUERY_NAMESPACE, ".".join(p for p in (ref.project, ref.dataset, ref.table) if p))]
    base, _ = split_options(text) if "://" in text else (text, {})
    if scheme == "file":
        parts = urlsplit(base if "://" in base else f"file://{base}")
        return [(f"file://{parts.netloc}" if parts.netloc else "file", parts.path)]
    parts = urlsplit(base)
    return [(f"{scheme}://{parts.netloc}", parts.path.lstrip("/"))]


def query_tables(sql: str, project: str | None) -> list[str]:
    """``project.dataset.table`` of each table a BigQuery query reads (empty if it cannot be parsed)."""
    try:
        from openlineage_sql import parse
    except ImportError:
        return []
    meta = parse([sql], dialect="bigquery")
    if meta is None:
        return []
    names = [".".join(p for p in (t.database or project, t.schema, t.name) if p) for t in meta.in_tables]
    return sorted(set(names))


def operator_lineage(rows: Any, destination: Any) -> Any:
    """An ``OperatorLineage`` with the rows source as inputs and the destination as outputs (rendered
    values: call it after the task ran, as ``get_openlineage_facets_on_complete`` does)."""
    from airflow.providers.common.compat.openlineage.facet import Dataset, SQLJobFacet
    from airflow.providers.openlineage.extractors import OperatorLineage

    inputs = [Dataset(namespace=ns, name=name) for ns, name in dataset_names(rows)]
    outputs = [Dataset(namespace=ns, name=name) for ns, name in dataset_names(destination)]
    job_facets: dict[str, Any] = {}
    if isinstance(rows, str) and rows.strip().lower().startswith("bq://"):
        query = BigQueryRef.parse(rows).query
        if query is not None:
            job_facets["sql"] = SQLJobFacet(query=query)
    return OperatorLineage(inputs=inputs, outputs=outputs, job_facets=job_facets)
