"""Unit tests of the Vertex emulator's storage endpoints (:class:`emulator.vertex_storage.VertexStorage`)."""

from __future__ import annotations

import pytest

from airflow_llm_batch.emulator.vertex_storage import BIGQUERY_ENV, GCS_ENV, StorageError, VertexStorage


def test_endpoints_come_from_the_setting_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GCS_ENV, "127.0.0.1:9023/")
    monkeypatch.delenv(BIGQUERY_ENV, raising=False)
    storage = VertexStorage(bigquery_endpoint="http://127.0.0.1:9050")
    assert storage.require_gcs() == "http://127.0.0.1:9023"
    assert storage.require_bigquery() == "http://127.0.0.1:9050"


def test_a_missing_endpoint_says_how_to_set_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(GCS_ENV, raising=False)
    monkeypatch.delenv(BIGQUERY_ENV, raising=False)
    with pytest.raises(StorageError) as gcs:
        VertexStorage().require_gcs()
    with pytest.raises(StorageError) as bigquery:
        VertexStorage().require_bigquery()
    assert f"no Cloud Storage endpoint: set {GCS_ENV} or POST /_emulator/vertex/storage" in str(gcs.value)
    assert f"no BigQuery endpoint: set {BIGQUERY_ENV} or POST /_emulator/vertex/storage" in str(bigquery.value)
