"""``gs://conn_id@bucket/...`` without apache-airflow-providers-google, on the GCS emulator: a
``google_cloud_platform`` connection named in the URI reaches gcsfs (storage_connections/gcs.py) for
the workspace and google-cloud-storage for the destination. An anonymous connection runs a DAG for real;
a generated service-account key proves gcsfs signs with the connection's key (the local token endpoint
verifies the assertion); key material never reaches an error."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.io import has_fs

from airflow_llm_batch.exceptions import BadConnectionError
from airflow_llm_batch.google.emulators import LocalGcs
from airflow_llm_batch.sources.rows import to_path
from airflow_llm_batch.storage_connections.gcs import gcs_options
from tests.airflow_helpers import run_dag, task_states, xcom
from tests.gcp.fixtures import unique_name
from tests.hooks.test_google_connection_fields import (  # noqa: F401 - fixtures
    ACCOUNT,
    SECRET,
    TokenEndpoint,
    key_info,
    token_url,
)
from tests.operators.test_llm_batch_operator import write_rows

pytestmark = pytest.mark.skipif(has_fs("gs"),
                                reason="apache-airflow-providers-google installed: its filesystem reads the connection")


def _set_connection(conn_id: str, extra: dict[str, Any]) -> None:
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps({"conn_type": "google_cloud_platform", "extra": extra})


def _bucket(gcs: LocalGcs, prefix: str) -> str:
    return str(gcs.client().create_bucket(unique_name(prefix).replace("_", "-")).name)


@pytest.mark.usefixtures("emulator", "airflow_db", "gcs_connection")
def test_a_run_keeps_its_workspace_and_lands_its_rows_on_gs_through_a_connection(
        tmp_path: Path, gcs_emulator: LocalGcs, emulator: Any) -> None:
    _set_connection("gcs_anon", {"is_anonymous": True, "project": "llmb-test"})
    bucket = _bucket(gcs_emulator, "connws")
    rows = write_rows(tmp_path / "rows.jsonl", 25)
    before = emulator.stats()["openai"]["batches_created"]
    dag_run = run_dag("llmb_operator", {"rows": f"file://{rows}", "destination": f"gs://gcs_anon@{bucket}/out/r.jsonl",
                                        "workspace": f"gs://gcs_anon@{bucket}/ws"})
    assert task_states(dag_run) == {"batch": "success"}
    assert xcom(dag_run, "batch")["succeeded"] == 25
    root = gcs_emulator.objects_root / bucket
    landed = [json.loads(line) for line in (root / "out" / "r.jsonl").read_text().splitlines()]
    assert sorted(r["key"] for r in landed) == [f"r{i:05d}" for i in range(25)]
    (folder,) = (root / "ws" / "llmb_operator" / "batch").iterdir()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["total_rows"] == 25 and {c["state"] for c in manifest["chunks"]} == {"collected"}
    assert emulator.stats()["openai"]["batches_created"] - before == len(manifest["chunks"])


@pytest.mark.usefixtures("gcs_connection")
def test_gcsfs_signs_with_the_connections_service_account_key(gcs_emulator: LocalGcs, key_info: dict[str, str]) -> None:  # noqa: F811
    from airflow.sdk import ObjectStoragePath

    _set_connection("gcs_key", {"keyfile_dict": json.dumps(key_info)})
    bucket = _bucket(gcs_emulator, "connkey")
    TokenEndpoint.claims.clear()
    path = to_path(f"gs://gcs_key@{bucket}/probe.txt")
    path.write_bytes(b"signed")
    assert (gcs_emulator.objects_root / bucket / "probe.txt").read_bytes() == b"signed"
    assert [c["iss"] for c in TokenEndpoint.claims] == [ACCOUNT]  # one token, asserted with the connection's key
    again = ObjectStoragePath(f"gs://gcs_key@{bucket}/probe.txt")
    assert again.read_bytes() == b"signed" and again.fs is path.fs and len(TokenEndpoint.claims) == 1


@pytest.mark.usefixtures("gcs_connection")
def test_a_broken_key_is_refused_without_showing_it(key_info: dict[str, str]) -> None:  # noqa: F811
    _set_connection("gcs_broken", {"keyfile_dict": json.dumps({**key_info, "private_key": SECRET})})
    with pytest.raises(BadConnectionError, match="'keyfile_dict'") as failure:
        to_path("gs://gcs_broken@bucket/ws")
    assert SECRET not in str(failure.value)


def test_fields_only_the_google_provider_reads_are_refused_by_name() -> None:
    with pytest.raises(BadConnectionError, match="key_secret_name"):
        gcs_options("g", "google_cloud_platform", {"key_secret_name": "projects/p/secrets/s"})
    with pytest.raises(BadConnectionError, match="type 'aws'"):
        gcs_options("g", "aws", {})


def test_the_official_filesystem_extras_map_onto_gcsfs_options() -> None:
    options = gcs_options("g", "google_cloud_platform", {
        "is_anonymous": "true", "extra__google_cloud_platform__project": "p", "gcs.requester-pays": "true",
        "gcs.default-bucket-location": "EU", "storage_endpoint": "127.0.0.1:9023", "vertex_staging_uri": "gs://b/s"})
    assert options == {"token": "anon", "project": "p", "requester_pays": True, "default_location": "EU",
                       "endpoint_url": "http://127.0.0.1:9023"}


def test_the_sink_and_source_read_the_connection_from_the_path() -> None:
    from airflow_llm_batch.exceptions import InvalidInputError
    from airflow_llm_batch.google.gcs import GcsObject

    assert GcsObject.parse("gs://gcs_anon@bucket/a/b.jsonl") == GcsObject("bucket", "a/b.jsonl", "gcs_anon")
    assert GcsObject.parse("gs://gcs_anon@bucket/x", "gcs_anon").conn_id == "gcs_anon"
    with pytest.raises(InvalidInputError, match="names connection 'one' and conn_id is 'two'"):
        GcsObject.parse("gs://one@bucket/x", "two")
