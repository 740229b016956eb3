"""Session fixtures for the local GCS and BigQuery emulators (importable from any conftest).

    from tests.gcp.fixtures import bq_emulator, gcp_connection, gcs_connection, gcs_emulator  # noqa: F401

* ``gcs_emulator``: a running gcp-storage-emulator (:class:`LocalGcs`: ``endpoint``, ``data_dir``,
  ``objects_root``, ``client()``).
* ``bq_emulator``: a running bqemulator (:class:`LocalBigQuery`: ``endpoint``, ``project``,
  ``client()``); its load jobs read ``gs://`` URIs from the GCS emulator's files.
* ``gcs_connection``: ``STORAGE_EMULATOR_HOST`` set for the session (GCS only, no bqemulator).
* ``gcp_connection``: the Airflow connection ``google_cloud_default`` (and ``gcp_emulator``)
  pointing at both, set through ``AIRFLOW_CONN_*`` for the session.

Each process is started once per session, whatever number of conftests import these fixtures
(a shared, reference-counted registry), and stopped (its process group killed) when the last
user is done.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_llm_batch.google import STORAGE_EMULATOR_ENV
from airflow_llm_batch.google.emulators import (
    DEFAULT_PROJECT,
    LocalBigQuery,
    LocalGcs,
    airflow_connection,
    start_bigquery_emulator,
    start_gcs_emulator,
)

GCP_PROJECT = DEFAULT_PROJECT
GCP_CONN_ID = "gcp_emulator"

_SHARED: dict[str, list[Any]] = {}  # name -> [value, users, stop]
_ROOT: list[Path] = []


def _root() -> Path:
    if not _ROOT:
        _ROOT.append(Path(tempfile.mkdtemp(prefix="llmb-gcp-emulators-")))
    return _ROOT[0]


def _acquire(name: str, start: Callable[[], Any], stop: Callable[[Any], None]) -> Any:
    entry = _SHARED.get(name)
    if entry is None:
        entry = _SHARED[name] = [start(), 0, stop]
    entry[1] += 1
    return entry[0]


def _release(name: str) -> None:
    entry = _SHARED[name]
    entry[1] -= 1
    if entry[1] == 0:
        del _SHARED[name]
        entry[2](entry[0])
        if not _SHARED and _ROOT:
            shutil.rmtree(_ROOT.pop(), ignore_errors=True)


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[LocalGcs]:
    """gcp-storage-emulator on a free loopback port, objects on disk in a session temp dir."""
    gcs = _acquire("gcs", lambda: start_gcs_emulator(_root() / "gcs"), lambda g: g.stop())
    try:
        yield gcs
    finally:
        _release("gcs")


@pytest.fixture(scope="session")
def bq_emulator(gcs_emulator: LocalGcs) -> Iterator[LocalBigQuery]:
    """bqemulator (in memory) on free loopback ports, project ``test-project``."""
    if sys.version_info < (3, 11):
        pytest.skip("bqemulator needs Python >= 3.11 (the dev dependency is not installed below it)")
    bq = _acquire("bq", lambda: start_bigquery_emulator(_root() / "bq", project=GCP_PROJECT, gcs=gcs_emulator),
                  lambda b: b.stop())
    try:
        yield bq
    finally:
        _release("bq")


@pytest.fixture(scope="session")
def gcs_connection(gcs_emulator: LocalGcs) -> Iterator[str]:
    """``STORAGE_EMULATOR_HOST`` -> the GCS emulator for the session: gs:// works with no connection
    (and without starting bqemulator). Returns the endpoint."""
    saved = os.environ.get(STORAGE_EMULATOR_ENV)
    os.environ[STORAGE_EMULATOR_ENV] = gcs_emulator.endpoint
    try:
        yield gcs_emulator.endpoint
    finally:
        if saved is None:
            os.environ.pop(STORAGE_EMULATOR_ENV, None)
        else:
            os.environ[STORAGE_EMULATOR_ENV] = saved


@pytest.fixture(scope="session")
def gcp_connection(gcs_emulator: LocalGcs, bq_emulator: LocalBigQuery) -> Iterator[str]:
    """``google_cloud_default`` and ``gcp_emulator`` Airflow connections -> both emulators."""
    names = ("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", f"AIRFLOW_CONN_{GCP_CONN_ID.upper()}")
    saved = {n: os.environ.get(n) for n in names}
    value = airflow_connection(gcs_emulator, bq_emulator)
    for name in names:
        os.environ[name] = value
    try:
        yield GCP_CONN_ID
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def unique_name(prefix: str) -> str:
    """A dataset/bucket/table name unique to the calling test (letters, digits, underscores)."""
    import uuid

    return f"{prefix}_{uuid.uuid4().hex[:10]}"


__all__ = ["GCP_CONN_ID", "GCP_PROJECT", "bq_emulator", "gcp_connection", "gcs_connection", "gcs_emulator",
           "unique_name"]
