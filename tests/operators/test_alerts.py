"""Alerts while a task runs, in real Airflow on an emulator whose batches do not progress: a batch open
longer than warn_after is logged and handed to on_stuck_batch once (deferred and on the worker); a
min_success_rate that can no longer be met cancels the open batches, lands the answered rows and fails
the task without waiting for the rest."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.airflow_helpers import run_dag, task_states

#: the emulator refuses a batch file over this: the first chunk (one long row) fails validation
MAX_FILE_BYTES = 20_000


@pytest.fixture(scope="module")
def slow_emulator() -> Iterator[Any]:
    """Batches that stay in progress (one request per ~17 minutes), and the ``llm_slow`` connection."""
    from airflow_llm_batch.emulator import Emulator, EmulatorConfig

    emu = Emulator(EmulatorConfig(host="127.0.0.1", port=0, validating_seconds=0.1, requests_per_second=0.001,
                                  cancelling_seconds=0.1, max_batch_file_bytes=MAX_FILE_BYTES))
    emu.start()
    os.environ["AIRFLOW_CONN_LLM_SLOW"] = json.dumps(
        {"conn_type": "openai", "password": "test-key", "host": emu.openai_base_url})
    try:
        yield emu
    finally:
        emu.stop()


def write_rows(path: Path, count: int, long_first: bool = False) -> str:
    lines = [{"id": f"r{i:03d}", "text": f"ticket {i}"} for i in range(count)]
    if long_first:
        lines[0]["text"] = "word " * (MAX_FILE_BYTES // 4)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return f"file://{path}"


def statuses(emu: Any, ids: list[str]) -> list[str]:
    client = openai.OpenAI(base_url=emu.openai_base_url, api_key="test-key")
    return [client.batches.retrieve(b).status for b in ids]


@pytest.mark.parametrize("dag_id", ["ops_stuck_deferred", "ops_stuck_worker"])
def test_a_batch_open_past_warn_after_is_reported_once_to_the_callback(
        dag_id: str, tmp_path: Path, slow_emulator: Any, airflow_db: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    stuck_log = tmp_path / "stuck.jsonl"
    monkeypatch.setenv("LLMB_STUCK_LOG", str(stuck_log))
    before = list(slow_emulator.stats()["openai"]["batches"])
    dag_run = run_dag(dag_id, {"rows": write_rows(tmp_path / "rows.jsonl", 5),
                               "destination": f"file://{tmp_path}/out.jsonl", "workspace": f"file://{tmp_path}/ws"})
    assert task_states(dag_run) == {"batch": "failed"}  # the timeout ends it: the batch never progresses
    (batch_id,) = [b for b in slow_emulator.stats()["openai"]["batches"] if b not in before]
    calls = [json.loads(line) for line in stuck_log.read_text().splitlines()]
    assert len(calls) == 1, calls  # warned once, though polled many times (and, deferred, re-deferred)
    (call,) = calls
    assert call["batch_ids"] == [batch_id]
    assert call["dag_id"] == dag_id and call["task_id"] == "batch" and call["provider"] == "openai"
    assert call["model"] == "gpt-4o-mini" and call["warn_after"] == 0.0
    assert call["open_seconds"][batch_id] >= 0
    out = capfd.readouterr()
    warnings = [line for line in (out.out + out.err).splitlines()
                if "Stuck: batch(es) open longer than warn_after" in line]
    assert len(warnings) == 1 and batch_id in warnings[0], warnings


def test_a_lost_success_rate_cancels_open_batches_lands_answered_rows_and_fails(
        tmp_path: Path, slow_emulator: Any, airflow_db: Path) -> None:
    before = list(slow_emulator.stats()["openai"]["batches"])
    out = tmp_path / "out.jsonl"
    dag_run = run_dag("ops_fail_fast", {"rows": write_rows(tmp_path / "rows.jsonl", 100, long_first=True),
                                        "destination": f"file://{out}", "workspace": f"file://{tmp_path}/ws"})
    assert task_states(dag_run) == {"batch": "failed"}
    created = [b for b in slow_emulator.stats()["openai"]["batches"] if b not in before]
    assert len(created) == 5
    first, *rest = statuses(slow_emulator, created)
    assert first == "failed"  # file_too_large: its 20 rows failed, so at most 80/100 can succeed (< 90%)
    assert set(rest) <= {"cancelling", "cancelled"}, rest
    landed = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(landed) == 20
    assert {row["status"] for row in landed} == {"failed"}
    assert {row["error"]["code"] for row in landed} == {"file_too_large"}
