"""Run metrics through Airflow's metrics layer: with StatsD on, a real run on the emulator sends the
documented metric lines (tagged, InfluxDB-style) to a UDP listener."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.report.run_folder import FAILING, ROWS, run_for_report

TAGS = ",provider=openai,model=gpt-4o-mini,dag_id=ops_report,task_id=batch"


@pytest.fixture
def statsd(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A UDP listener on loopback, and Airflow's Stats pointed at it (tags in InfluxDB form)."""
    from airflow.sdk._shared.observability.metrics import stats
    from airflow.sdk.observability.metrics.stats_utils import get_stats_factory

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    for key, value in {"STATSD_ON": "True", "STATSD_HOST": "127.0.0.1", "STATSD_PORT": str(sock.getsockname()[1]),
                       "STATSD_PREFIX": "airflow", "STATSD_INFLUXDB_ENABLED": "True"}.items():
        monkeypatch.setenv(f"AIRFLOW__METRICS__{key}", value)
    stats.initialize(factory=get_stats_factory(), export_legacy_names=False)
    try:
        yield sock
    finally:
        monkeypatch.undo()
        stats.initialize(factory=get_stats_factory(), export_legacy_names=False)
        sock.close()


@pytest.fixture
def paced_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An emulator whose batches validate, then run, each for longer than a poll interval (0.2 s), on the
    ``llm_emulator`` connection the report DAG uses."""
    from airflow_llm_batch.emulator import Emulator, EmulatorConfig

    emu = Emulator(EmulatorConfig(host="127.0.0.1", port=0, validating_seconds=0.6, requests_per_second=50.0,
                                  finalizing_seconds=0.3))
    emu.start()
    monkeypatch.setenv("AIRFLOW_CONN_LLM_EMULATOR", json.dumps(
        {"conn_type": "openai", "password": "test-key", "host": emu.openai_base_url}))
    try:
        yield emu
    finally:
        emu.stop()


def received(sock: socket.socket) -> dict[str, str]:
    """Every metric line sent so far: ``name,tags`` -> ``value|type``."""
    lines: dict[str, str] = {}
    sock.settimeout(0.5)
    while True:
        try:
            data = sock.recv(65535)
        except TimeoutError:
            return lines
        for line in data.decode().splitlines():
            name, _, value = line.partition(":")
            lines[name] = value


def test_a_landed_run_sends_its_metrics_tagged(tmp_path: Path, emulator: Any, airflow_db: Path,
                                               statsd: socket.socket) -> None:
    run = run_for_report(tmp_path, emulator)
    lines = received(statsd)
    ours = {k: v for k, v in lines.items() if k.startswith("airflow.llm_batch.")}
    assert ours, sorted(lines)
    assert ours[f"airflow.llm_batch.rows.succeeded{TAGS}"] == f"{ROWS - len(FAILING)}|c"
    assert ours[f"airflow.llm_batch.rows.failed{TAGS}"] == f"{len(FAILING)}|c"
    assert ours[f"airflow.llm_batch.errors.invalid_prompt{TAGS}"] == f"{len(FAILING)}|c"
    assert ours[f"airflow.llm_batch.requests.sent{TAGS}"] == f"{ROWS}|c"
    assert ours[f"airflow.llm_batch.batches.created{TAGS}"] == f"{run.batches_created}|c"
    tokens = run.summary["usage"]
    assert ours[f"airflow.llm_batch.tokens.input{TAGS}"] == f"{tokens['input_tokens']}|c"
    assert ours[f"airflow.llm_batch.tokens.output{TAGS}"] == f"{tokens['output_tokens']}|c"
    cost = run.summary["cost"]
    assert float(ours[f"airflow.llm_batch.cost.batch_usd{TAGS}"].removesuffix("|g")) == pytest.approx(cost["batch_usd"])
    assert float(ours[f"airflow.llm_batch.cost.realtime_usd{TAGS}"].removesuffix("|g")) == pytest.approx(
        cost["realtime_usd"])
    assert ours[f"airflow.llm_batch.run.duration{TAGS}"].endswith("|ms")
    assert ours[f"airflow.llm_batch.batch.open{TAGS}"].endswith("|ms")
    for name in ("requests.cached", "requests.repeated", "batches.requeued", "batches.expired"):
        assert ours[f"airflow.llm_batch.{name}{TAGS}"] == "0|c"



def test_the_landing_writes_the_report_and_links_it_from_the_task(tmp_path: Path, emulator: Any,
                                                                   airflow_db: Path) -> None:
    from airflow_llm_batch.operators import LLMBatchOperator
    from airflow_llm_batch.operators.links import RunReportLink

    run = run_for_report(tmp_path, emulator)
    assert run.summary["report"] == f"file://{run.folder}/report.html"
    assert (run.folder / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert run.report_link == run.summary["report"]
    assert RunReportLink.name in [link.name for link in LLMBatchOperator.operator_extra_links]


@pytest.mark.parametrize("dag_id", ["ops_report", "ops_report_worker"])
def test_each_batch_records_when_it_started_running_and_sends_queued_and_running_times(
        tmp_path: Path, paced_emulator: Any, airflow_db: Path, statsd: socket.socket, dag_id: str) -> None:
    run = run_for_report(tmp_path, paced_emulator, dag_id)
    chunks = json.loads((run.folder / "manifest.json").read_text())["chunks"]
    assert len(chunks) == run.batches_created == 3
    for chunk in chunks:
        assert chunk["submitted_at"] < chunk["running_at"] < chunk["ended_at"], chunk
    ours = received(statsd)
    tags = TAGS.replace("dag_id=ops_report", f"dag_id={dag_id}")
    assert ours[f"airflow.llm_batch.batch.queued{tags}"].endswith("|ms")
    assert ours[f"airflow.llm_batch.batch.running{tags}"].endswith("|ms")
