"""gs:// folders and bq:// datasets: the one parser the Vertex staging locations use."""

from __future__ import annotations

import pytest

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.google.uris import BigQueryDataset, GcsPrefix, split_gs


def test_split_gs_gives_bucket_and_path_without_trailing_slash() -> None:
    assert split_gs("gs://b/a/b/") == ("b", "a/b")
    assert split_gs("gs://b") == ("b", "")
    for bad in ("s3://b/x", "gs:///x", "b/x"):
        with pytest.raises(InvalidInputError):
            split_gs(bad)


def test_gcs_prefix_names_children() -> None:
    prefix = GcsPrefix.parse("gs://bkt/llm/")
    assert prefix == GcsPrefix("bkt", "llm") and str(prefix) == "gs://bkt/llm"
    assert prefix.child("t1", "requests.jsonl") == "gs://bkt/llm/t1/requests.jsonl"
    assert GcsPrefix.parse("gs://bkt").child("t1") == "gs://bkt/t1"


def test_bigquery_dataset_takes_a_default_project_and_refuses_tables() -> None:
    assert BigQueryDataset.parse("bq://p.ds").table_id("t") == "p.ds.t"
    assert BigQueryDataset.parse("bq://ds", "dflt") == BigQueryDataset("dflt", "ds")
    assert str(BigQueryDataset("p", "ds")) == "bq://p.ds"
    for bad in ("bq://ds", "bq://p.ds.table", "gs://b/x", "bq://p."):
        with pytest.raises(InvalidInputError, match=r"expected bq://PROJECT\.DATASET"):
            BigQueryDataset.parse(bad)
