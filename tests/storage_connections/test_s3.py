"""``s3://conn_id@bucket/...`` without apache-airflow-providers-amazon: an ``aws`` connection's fields reach
s3fs (storage_connections/s3.py), against a signature-checking S3 server (moto) on loopback: a real
run keeps its workspace and lands its rows there; a wrong secret fails clearly and never shows up in
an error or a log; the fields that cannot be honoured are refused by name."""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.io import has_fs

from airflow_llm_batch.exceptions import BadConnectionError
from airflow_llm_batch.sources.rows import to_path
from airflow_llm_batch.storage_connections.s3 import s3_options
from tests.airflow_helpers import run_dag, task_states, xcom
from tests.operators.test_llm_batch_operator import write_rows
from tests.storage_connections.conftest import LocalS3

pytestmark = pytest.mark.skipif(has_fs("s3"),
                                reason="apache-airflow-providers-amazon installed: its filesystem reads the connection")

WRONG_SECRET = "WRONGSECRETwrongsecret0123456789abcdefgh"


def _set_connection(conn_id: str, **fields: Any) -> None:
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps({"conn_type": "aws", **fields})


@pytest.fixture
def bucket(s3_server: LocalS3) -> Iterator[str]:
    name = f"llmb-{uuid.uuid4().hex[:10]}"
    s3_server.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]
    _set_connection("lake", login=s3_server.key_id, password=s3_server.secret,
                    extra={"endpoint_url": s3_server.endpoint, "region_name": "us-east-1"})
    _set_connection("lake_wrong", login=s3_server.key_id, password=WRONG_SECRET,
                    extra={"service_config": {"s3": {"endpoint_url": s3_server.endpoint}}})
    yield name


def _objects(s3: LocalS3, bucket: str, prefix: str = "") -> dict[str, bytes]:
    client: Any = s3.client()
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


@pytest.mark.usefixtures("emulator", "airflow_db")
def test_a_run_keeps_its_workspace_and_lands_its_rows_on_s3_through_a_connection(
        tmp_path: Path, s3_server: LocalS3, bucket: str, emulator: Any) -> None:
    rows = write_rows(tmp_path / "rows.jsonl", 30)
    before = emulator.stats()["openai"]["batches_created"]
    dag_run = run_dag("llmb_operator", {"rows": f"file://{rows}", "destination": f"s3://lake@{bucket}/out/results.jsonl",
                                        "workspace": f"s3://lake@{bucket}/ws"})
    assert task_states(dag_run) == {"batch": "success"}
    assert xcom(dag_run, "batch")["succeeded"] == 30
    objects = _objects(s3_server, bucket)
    landed = [json.loads(line) for line in objects["out/results.jsonl"].decode().splitlines()]
    assert sorted(r["key"] for r in landed) == [f"r{i:05d}" for i in range(30)]
    (manifest_key,) = [k for k in objects if k.startswith("ws/llmb_operator/batch/") and k.endswith("/manifest.json")]
    manifest = json.loads(objects[manifest_key])
    assert manifest["total_rows"] == 30 and {c["state"] for c in manifest["chunks"]} == {"collected"}
    assert emulator.stats()["openai"]["batches_created"] - before == len(manifest["chunks"])


def test_the_path_resolves_to_the_connection_filesystem(s3_server: LocalS3, bucket: str) -> None:
    from airflow.sdk import ObjectStoragePath

    path = to_path(f"s3://lake@{bucket}/probe.txt")
    path.write_bytes(b"hello")
    assert _objects(s3_server, bucket) == {"probe.txt": b"hello"}
    again = ObjectStoragePath(f"s3://lake@{bucket}/probe.txt")  # Airflow's own path finds the attached filesystem
    assert again.conn_id == "lake" and again.read_bytes() == b"hello" and again.fs is path.fs


def test_a_wrong_secret_fails_clearly_and_never_shows_the_secret(
        s3_server: LocalS3, bucket: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    path = to_path(f"s3://lake_wrong@{bucket}/ws/manifest.json")
    with pytest.raises(PermissionError) as failure:
        path.write_bytes(b"{}")
    assert "signature" in str(failure.value).lower()
    assert WRONG_SECRET not in str(failure.value) and WRONG_SECRET not in repr(failure.value)
    assert WRONG_SECRET not in caplog.text and s3_server.secret not in caplog.text
    assert _objects(s3_server, bucket) == {}


@pytest.mark.usefixtures("emulator", "airflow_db")
def test_a_run_whose_workspace_key_is_wrong_fails_before_anything_is_paid(
        tmp_path: Path, bucket: str, emulator: Any, caplog: pytest.LogCaptureFixture,
        capfd: pytest.CaptureFixture[str]) -> None:
    rows = write_rows(tmp_path / "rows.jsonl", 5)
    before = emulator.stats()["openai"]["batches_created"]
    dag_run = run_dag("llmb_operator", {"rows": f"file://{rows}", "destination": f"file://{tmp_path}/out.jsonl",
                                        "workspace": f"s3://lake_wrong@{bucket}/ws"})
    assert task_states(dag_run) == {"batch": "failed"}
    assert emulator.stats()["openai"]["batches_created"] == before
    out, err = capfd.readouterr()
    shown = caplog.text + out + err  # the task's log and the exception it failed with
    assert "PermissionError: Forbidden" in shown and "manifest.py" in shown  # s3fs's error, on the first read
    assert "Access denied" in shown and "CONN_ID@bucket" in shown  # and what to check, with no retry
    assert WRONG_SECRET not in shown


@pytest.mark.parametrize("extra, named", [
    ({"role_arn": "arn:aws:iam::1:role/r"}, "role_arn"),
    ({"assume_role_method": "assume_role"}, "assume_role_method"),
    ({"session_kwargs": {"aws_access_key_id": "x"}}, "session_kwargs"),
    ({"colour": "blue"}, "colour"),
    ({"service_config": {"s3": {"signer": "S3V4RestSigner"}}}, "signer"),
])
def test_fields_that_cannot_be_honoured_are_refused_by_name(extra: dict[str, Any], named: str) -> None:
    with pytest.raises(BadConnectionError, match=named) as failure:
        s3_options("lake", "aws", "AKIAEXAMPLE", "topsecretvalue", extra)
    assert "topsecretvalue" not in str(failure.value)


def test_the_official_fields_map_onto_s3fs_options() -> None:
    options = s3_options("lake", "aws", None, None, {
        "aws_access_key_id": "AKIA", "aws_secret_access_key": "s", "aws_session_token": "t", "region_name": "eu-west-1",
        "endpoint_url": "http://global", "service_config": {"s3": {"endpoint_url": "http://s3-only"}},
        "verify": False, "profile_name": "p", "config_kwargs": {"signature_version": "unsigned", "retries": {}}})
    assert options == {"key": "AKIA", "secret": "s", "token": "t", "profile": "p", "endpoint_url": "http://s3-only",
                       "client_kwargs": {"region_name": "eu-west-1", "verify": False}, "anon": True,
                       "config_kwargs": {"retries": {}}}
    assert s3_options("lake", "aws", "L", "P", {"aws_access_key_id": "E", "aws_secret_access_key": "F"}) == {
        "key": "L", "secret": "P"}  # login and password win, as in the Amazon provider
    with pytest.raises(BadConnectionError, match="secret access key"):
        s3_options("lake", "aws", "AKIA", None, {})
    with pytest.raises(BadConnectionError, match="type 'google_cloud_platform'"):
        s3_options("lake", "google_cloud_platform", None, None, {})
