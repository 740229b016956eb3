"""Test set-up shared by every module: an isolated AIRFLOW_HOME (set before Airflow is imported),
and the bundled emulator started once per session on loopback."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_HOME = Path(tempfile.mkdtemp(prefix="llmb-airflow-home-"))
os.environ.update(
    AIRFLOW_HOME=str(_HOME),
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    AIRFLOW__CORE__DAGS_FOLDER=str(Path(__file__).parent / "dags"),
    AIRFLOW__CORE__UNIT_TEST_MODE="False",
    AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
    AIRFLOW__API_AUTH__JWT_SECRET="x" * 64,
    AIRFLOW__LLM_BATCH__WORKSPACE=f"file://{_HOME}/workspace",
    # gcsfs's default class asks the storage-control gRPC API for each bucket's layout, which the GCS
    # emulator does not serve: 60 s per bucket before it falls back (read when gcsfs is imported)
    GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT="false",
)


EMULATOR_CONN_ID = "llm_emulator"


@pytest.fixture(scope="session")
def emulator() -> Iterator[Any]:
    """The bundled batch-API emulator, fast-paced, with an Airflow connection pointing at it."""
    from airflow_llm_batch.emulator import Emulator, EmulatorConfig

    emu = Emulator(EmulatorConfig(host="127.0.0.1", port=0, validating_seconds=0.1,
                                  requests_per_second=20_000.0, finalizing_seconds=0.1))
    emu.start()
    os.environ[f"AIRFLOW_CONN_{EMULATOR_CONN_ID.upper()}"] = json.dumps(
        {"conn_type": "openai", "password": "test-key", "host": emu.openai_base_url}
    )
    os.environ["AIRFLOW_CONN_LLM_EMULATOR_PATIENT"] = json.dumps(
        {"conn_type": "openai", "password": "test-key", "host": emu.openai_base_url,
         "extra": {"max_retries": 12}}
    )
    os.environ["AIRFLOW_CONN_ANTHROPIC_EMULATOR"] = json.dumps(
        {"conn_type": "anthropic", "password": "test-key", "host": emu.anthropic_base_url}
    )
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB in the session's AIRFLOW_HOME (needed by dag.test())."""
    from airflow.utils import db

    db.resetdb()
    return _HOME
