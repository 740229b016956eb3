"""The worker's own wait (``deferrable=False``) follows the trigger's decisions (pipeline/waiting.py),
including its tolerance of failed polls; and every SDK client a run builds is closed: steps that only
read or record the run's files build none. Real Airflow (dag.test()) against the session emulator;
DAGs: tests/dags/llm_batch_test_dags.py."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_llm_batch.backends.openai import OpenAIBatchBackend
from tests.airflow_helpers import run_dag, task_states, xcom

pytestmark = pytest.mark.usefixtures("emulator", "airflow_db")

#: the connection's client tries each call 4 times (max_retries 3): 8 failures are two failed polls
FAILED_POLLS = 2
CALLS_PER_POLL = 4


def write_rows(path: Path, count: int) -> Path:
    path.write_text("".join(json.dumps({"id": f"r{i:03d}", "text": f"item {i}"}) + "\n" for i in range(count)))
    return path


@pytest.fixture
def backends(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Counts OpenAI backends built and closed in this process (the originals still run)."""
    seen: Counter[str] = Counter()
    built, close = OpenAIBatchBackend.__init__, OpenAIBatchBackend.aclose

    def counting_init(self: OpenAIBatchBackend, *args: Any, **kwargs: Any) -> None:
        seen["built"] += 1
        built(self, *args, **kwargs)

    async def counting_close(self: OpenAIBatchBackend) -> None:
        seen["closed"] += 1
        await close(self)

    monkeypatch.setattr(OpenAIBatchBackend, "__init__", counting_init)
    monkeypatch.setattr(OpenAIBatchBackend, "aclose", counting_close)
    yield seen


def test_the_worker_loop_rides_out_failed_polls_like_the_trigger(tmp_path: Path, emulator: Any,
                                                                 capfd: pytest.CaptureFixture[str]) -> None:
    rows = write_rows(tmp_path / "rows.jsonl", 40)
    emulator.inject_fault(503, count=FAILED_POLLS * CALLS_PER_POLL, path_prefix="/v1/batches/", method="GET")
    try:
        dag_run = run_dag("llmb_sync", {"rows": f"file://{rows}", "workspace": f"file://{tmp_path}/ws"})
    finally:
        emulator.clear_faults()
    printed = "".join(capfd.readouterr())
    assert task_states(dag_run) == {"batch": "success"}, printed[-4000:]
    assert "Poll failed (1/5)" in printed and "Poll failed (2/5)" in printed, printed[-4000:]
    summary = xcom(dag_run, "batch")
    assert summary["succeeded"] == 40 and len(summary["results"]) == 40


@pytest.mark.parametrize("dag_id", ["llmb_sync", "llmb_split"])
def test_every_client_a_run_builds_is_closed(dag_id: str, tmp_path: Path, backends: Counter[str]) -> None:
    rows = write_rows(tmp_path / "rows.jsonl", 30)
    dag_run = run_dag(dag_id, {"rows": f"file://{rows}", "workspace": f"file://{tmp_path}/ws",
                               "destination": f"file://{tmp_path}/out.jsonl"})
    assert set(task_states(dag_run).values()) == {"success"}
    assert backends["built"] > 0 and backends["closed"] == backends["built"], backends
