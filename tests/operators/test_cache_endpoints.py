"""Trust at the edges of the request cache, in real Airflow and counted on the emulators' side: an
answer is reused only for the endpoint that gave it, and a run that died with its batch in flight
is not paid for again by the next run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_llm_batch.emulator import Emulator, EmulatorConfig
from tests.airflow_helpers import run_dag, task_states, xcom

pytestmark = pytest.mark.usefixtures("emulator", "airflow_db")
REPO = Path(__file__).resolve().parents[2]


def write_rows(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"id": f"e{i:05d}", "text": t}) + "\n" for i, t in enumerate(texts)))
    return path


def counts(emulator: Any, name: str) -> Counter[str]:
    return Counter({k: v for k, v in emulator.stats()["openai"][name].items() if k.startswith("e")})


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def second_emulator() -> Iterator[tuple[Emulator, str]]:
    """Another emulator (another port, another key) behind its own Airflow connection."""
    conn_id = "llm_emulator_b"
    emu = Emulator(EmulatorConfig(host="127.0.0.1", port=0, validating_seconds=0.1, requests_per_second=20_000.0,
                                  finalizing_seconds=0.1))
    emu.start()
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
        {"conn_type": "openai", "password": "key-b", "host": emu.openai_base_url})
    try:
        yield emu, conn_id
    finally:
        os.environ.pop(f"AIRFLOW_CONN_{conn_id.upper()}", None)
        emu.stop()


def test_answer_cached_from_one_endpoint_is_not_served_to_another(
        tmp_path: Path, emulator: Any, second_emulator: tuple[Emulator, str]) -> None:
    other, other_conn = second_emulator
    texts = [f"endpoint check {i}" for i in range(200)]
    conf = {"rows": f"file://{write_rows(tmp_path / 'rows.jsonl', texts)}", "workspace": f"file://{tmp_path}/ws"}
    paid_a = counts(emulator, "succeeded_by_custom_id")

    first = run_dag("llmb_cache_conn", {**conf, "destination": f"file://{tmp_path}/a1.jsonl"})
    assert task_states(first) == {"batch": "success"}
    assert counts(emulator, "succeeded_by_custom_id") - paid_a == Counter({f"e{i:05d}": 1 for i in range(200)})

    # the same rows against another endpoint: nothing from endpoint A's answers, every row paid at B
    on_b = run_dag("llmb_cache_conn", {**conf, "conn_id": other_conn, "destination": f"file://{tmp_path}/b.jsonl"})
    assert task_states(on_b) == {"batch": "success"}
    assert counts(other, "succeeded_by_custom_id") == Counter({f"e{i:05d}": 1 for i in range(200)})
    results = read_jsonl(tmp_path / "b.jsonl")
    assert len(results) == 200 and not any(r["cached"] for r in results)
    assert xcom(on_b, "batch")["cached_rows"] == 0

    # the same endpoint again: the nightly reuse still pays nothing
    again = run_dag("llmb_cache_conn", {**conf, "destination": f"file://{tmp_path}/a2.jsonl"})
    assert task_states(again) == {"batch": "success"}
    assert counts(emulator, "succeeded_by_custom_id") - paid_a == Counter({f"e{i:05d}": 1 for i in range(200)})
    assert all(r["cached"] for r in read_jsonl(tmp_path / "a2.jsonl"))
    assert xcom(again, "batch")["cached_rows"] == 200


@pytest.fixture
def slow_emulator() -> Iterator[tuple[Emulator, str]]:
    """An emulator whose batches take ~10 s, so a run can be killed while its batch runs."""
    conn_id = "llm_emulator_slow"
    emu = Emulator(EmulatorConfig(host="127.0.0.1", port=0, validating_seconds=0.1, requests_per_second=4.0,
                                  finalizing_seconds=0.1))
    emu.start()
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
        {"conn_type": "openai", "password": "key-slow", "host": emu.openai_base_url})
    try:
        yield emu, conn_id
    finally:
        os.environ.pop(f"AIRFLOW_CONN_{conn_id.upper()}", None)
        emu.stop()


def start_run_in_subprocess(conf: dict[str, Any], log: Path) -> subprocess.Popen[bytes]:
    """dag.test() in its own process group, as a worker that can be killed."""
    code = ("import json, sys; from tests.airflow_helpers import run_dag; "
            "run_dag('llmb_cache_conn', json.loads(sys.argv[1]))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-c", code, json.dumps(conf)], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def submitted(workspace: Path) -> bool:
    """Whether a run's manifest records a batch id (the batch exists and the run knows it)."""
    for path in workspace.glob("llmb_cache_conn/batch/*/manifest.json"):
        try:
            if any(c["state"] == "submitted" for c in json.loads(path.read_text())["chunks"]):
                return True
        except ValueError:  # being replaced right now
            continue
    return False


def wait_for(condition: Any, proc: subprocess.Popen[bytes], log: Path, limit: float = 180.0) -> None:
    """A hang guard, not a timing assertion: fail if run 1 ends or never gets that far."""
    deadline = time.monotonic() + limit
    while not condition():
        assert proc.poll() is None, f"run 1 ended early:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"run 1 never got its batch in flight:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)


@pytest.mark.parametrize("next_mode", ["batch", "realtime"])
def test_run_killed_while_its_batch_runs_is_not_paid_again_by_the_next_run(
        tmp_path: Path, slow_emulator: tuple[Emulator, str], next_mode: str) -> None:
    """The next run adopts the killed run's batch, in real-time mode too: its rows are paid already, so
    the next run waits for that batch rather than send them again."""
    slow, conn_id = slow_emulator
    rows = 40
    text = f"kill test {next_mode}"
    conf = {"rows": f"file://{write_rows(tmp_path / 'rows.jsonl', [f'{text} {i}' for i in range(rows)])}",
            "workspace": f"file://{tmp_path}/ws", "conn_id": conn_id, "destination": f"file://{tmp_path}/out.jsonl"}

    proc = start_run_in_subprocess(conf, tmp_path / "run1.log")
    try:
        wait_for(lambda: submitted(tmp_path / "ws"), proc, tmp_path / "run1.log")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    (batch_id,) = slow.stats()["openai"]["batches"]
    from openai import OpenAI

    with OpenAI(base_url=slow.openai_base_url, api_key="k") as client:
        assert client.batches.retrieve(batch_id).status in ("validating", "in_progress")  # killed mid-batch

    second = run_dag("llmb_cache_conn", {**conf, "mode": next_mode})  # a new run id, same rows, same endpoint
    assert task_states(second) == {"batch": "success"}
    stats = slow.stats()["openai"]
    assert Counter(stats["succeeded_by_custom_id"]) == Counter({f"e{i:05d}": 1 for i in range(rows)})
    assert Counter(stats["requests_by_custom_id"]) == Counter({f"e{i:05d}": 1 for i in range(rows)})
    assert stats["batches_created"] == 1
    results = read_jsonl(tmp_path / "out.jsonl")
    assert sorted(r["key"] for r in results) == [f"e{i:05d}" for i in range(rows)]
    assert {r["status"] for r in results} == {"succeeded"} and {r["batch_id"] for r in results} == {batch_id}
    summary = xcom(second, "batch")
    assert summary["adopted_rows"] == rows and summary["sent_rows"] == 0 and summary["succeeded"] == rows
    assert slow.stats()["realtime"]["answered"] == 0 and {r["answered_by"] for r in results} == {"batch"}
