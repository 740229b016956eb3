"""Fixtures of the end-to-end tests: a slow emulator of their own and a real `airflow standalone`.

A test module configures them with module attributes:

* ``DAG_FILE`` (required): the DAG file copied into the fresh dags folder;
* ``CONN_ID`` (required): the connection id, set through an ``AIRFLOW_CONN_*`` variable to the slow
  emulator;
* ``REQUESTS_PER_SECOND`` (default 10): the emulator's pace, per batch;
* ``AIRFLOW_ENV`` (default none): extra ``AIRFLOW__*`` settings of the standalone instance.

On a failed test the standalone log, the logs of components started next to it and every task log
are printed; everything started is stopped in any case.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.standalone import AirflowStandalone


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[Any]:
    """Lets fixtures see whether the test failed (to dump logs only then)."""
    outcome: Any = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def _failed(request: pytest.FixtureRequest) -> bool:
    return any(getattr(request.node, f"rep_{phase}", None) is not None
               and getattr(request.node, f"rep_{phase}").failed for phase in ("setup", "call"))


@pytest.fixture
def slow_emulator(request: pytest.FixtureRequest) -> Iterator[Any]:
    """An emulator of the test's own, answering ``REQUESTS_PER_SECOND`` requests per second per batch."""
    from airflow_llm_batch.emulator import Emulator, EmulatorConfig

    rps = float(getattr(request.module, "REQUESTS_PER_SECOND", 10.0))
    emu = Emulator(EmulatorConfig(host="127.0.0.1", port=0, requests_per_second=rps,
                                  validating_seconds=0.2, finalizing_seconds=0.2))
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def airflow(tmp_path: Path, slow_emulator: Any, request: pytest.FixtureRequest) -> Iterator[AirflowStandalone]:
    """`airflow standalone` (started, not yet healthy) serving the module's ``DAG_FILE``."""
    dag_file: Path = request.module.DAG_FILE
    conn_id: str = request.module.CONN_ID
    conn = {"conn_type": "openai", "password": "test-key", "host": slow_emulator.openai_base_url}
    instance = AirflowStandalone(
        tmp_path / "airflow-home", [dag_file],
        extra_env={f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn),
                   **getattr(request.module, "AIRFLOW_ENV", {})},
    )
    try:
        instance.start()
        yield instance
    finally:
        if _failed(request):
            print(instance.diagnostics(80), flush=True)
        started = time.monotonic()
        instance.stop()
        print(f"[e2e] stopped every process in {time.monotonic() - started:.1f}s", flush=True)
