"""Chunks sent again (issue 10, items 5 and 10), in real Airflow (dag.test(), the trigger run inline)
against the emulator; every count is read on the emulator's side. DAGs: tests/dags/resend_test_dags.py.

- A chunk refused for the enqueued-token limit with no other batch of the task open is split, and the
  halves land; a single row that cannot fit fails the task at once (no retry) naming the limit and the
  setting; a chunk refused while other batches are open waits for them instead of being re-created.
- A batch that vanishes (404 after an emulator restart) has its rows sent again, and the task lands.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from airflow_llm_batch.emulator import Emulator, EmulatorConfig, FaultPlan
from tests.airflow_helpers import run_dag, task_states

pytestmark = pytest.mark.usefixtures("airflow_db")

#: a 400-character prompt: the emulator's tokenizer counts 1 + 99 + 1 = 101 tokens for it, + 3 = 104
LONG, LONG_TOKENS = 400, 104


@dataclass
class Outcome:
    state: str
    try_number: int
    results: list[dict[str, Any]]
    creates: int  # batches created on the emulator during the run (refused ones included)
    statuses: Counter[str]  # final status of each of those batches
    paid: Counter[str]  # successful answers per custom_id during the run
    printed: str


def texts(prefix: str, lengths: list[int]) -> dict[str, str]:
    """Rows of ``n`` characters: a 3-digit number then " the" repeated, one token per 4 characters."""
    return {f"{prefix}{i}": (f"{i:03d}" + " the" * n)[:n] for i, n in enumerate(lengths)}


@pytest.fixture
def printed(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Any:
    """Everything the run printed: the task's log lines (stdout) and the package's own log records."""
    caplog.set_level("INFO", logger="airflow_llm_batch")

    def read() -> str:
        output = capfd.readouterr()
        return output.out + output.err + caplog.text

    return read


def run(emulator: Any, dag_id: str, rows: dict[str, str], tmp_path: Path, printed: Any,
        plan: FaultPlan | None = None) -> Outcome:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"id": k, "text": t}) + "\n" for k, t in rows.items()))
    before = emulator.stats()["openai"]
    if plan is not None:
        emulator.set_fault_plan(plan)
    try:
        dag_run = run_dag(dag_id, {"rows": f"file://{path}", "destination": f"file://{tmp_path}/out.jsonl",
                                   "workspace": f"file://{tmp_path}/ws"})
    finally:
        emulator.clear_fault_plan()
    after = emulator.stats()["openai"]
    out = tmp_path / "out.jsonl"
    created = after["batches"][len(before["batches"]):]
    with OpenAI(base_url=emulator.openai_base_url, api_key="test-key") as client:
        statuses = Counter(client.batches.retrieve(b).status for b in created)
    (ti,) = dag_run.get_task_instances()
    return Outcome(
        state=task_states(dag_run)["batch"], try_number=ti.try_number,
        results=[json.loads(x) for x in out.read_text().splitlines()] if out.exists() else [],
        creates=after["batches_created"] - before["batches_created"], statuses=statuses,
        paid=delta(before["succeeded_by_custom_id"], after["succeeded_by_custom_id"], rows),
        printed=printed(),
    )


def delta(before: dict[str, int], after: dict[str, int], keys: dict[str, str]) -> Counter[str]:
    return Counter({k: after.get(k, 0) - before.get(k, 0) for k in keys if after.get(k, 0) - before.get(k, 0)})


def assert_landed(outcome: Outcome, rows: dict[str, str]) -> None:
    assert outcome.state == "success", outcome.printed[-4000:]
    assert sorted(r["key"] for r in outcome.results) == sorted(rows), "one result per row"
    assert {r["status"] for r in outcome.results} == {"succeeded"}
    assert outcome.paid == Counter(dict.fromkeys(rows, 1)), "every row paid exactly once"


# -- item 5: the enqueued-token limit ----------------------------------------------------------------
def test_a_chunk_over_the_limit_with_nothing_open_is_split_and_the_halves_land(
    emulator: Any, tmp_path: Path, printed: Any
) -> None:
    rows = texts("s", [LONG] * 8)  # one 8-row chunk: 832 tokens; 4 rows (416) fit under 520, 8 do not
    outcome = run(emulator, "llmb_resend_chunk8", rows, tmp_path, printed,
                  FaultPlan(enqueued_token_limit=5 * LONG_TOKENS))
    assert_landed(outcome, rows)
    # the whole chunk refused once; then one half, and the other once the first has ended
    assert outcome.creates == 3 and outcome.statuses == {"failed": 1, "completed": 2}, outcome.statuses
    assert "split into chunk 0 (4 rows) and chunk 1 (4 rows)" in outcome.printed


def test_a_single_row_over_the_limit_fails_at_once_naming_the_limit_and_the_setting(
    emulator: Any, tmp_path: Path, printed: Any
) -> None:
    rows = texts("g", [40, 40, 4000, 40])  # 14, 14, 1004 and 14 tokens: the third cannot fit under 500
    outcome = run(emulator, "llmb_resend_chunk4", rows, tmp_path, printed, FaultPlan(enqueued_token_limit=500))
    assert outcome.state == "failed" and outcome.try_number == 1, "failed for good, without its retry"
    # 4 rows refused -> g0+g1 sent (answered), g2+g3 refused -> g2 refused alone -> the task fails
    assert outcome.creates == 4 and outcome.statuses == {"failed": 3, "completed": 1}, outcome.statuses
    assert outcome.paid == Counter({"g0": 1, "g1": 1})
    assert "RequestTooLargeError: row 'g2'" in outcome.printed, outcome.printed[-4000:]
    for words in ("over the provider's enqueued-token limit by itself", "Limit: 500 enqueued tokens",
                  "set enqueued_token_budget to the limit"):
        assert words in outcome.printed


def test_a_chunk_refused_while_batches_are_open_waits_for_them(
    emulator: Any, tmp_path: Path, printed: Any
) -> None:
    rows = texts("w", [LONG] * 8)  # four 2-row chunks of 208 tokens; one fits under 300, two do not
    # slowed so the first batch is still running when the other three are created
    outcome = run(emulator, "llmb_resend_chunk2", rows, tmp_path, printed,
                  FaultPlan(enqueued_token_limit=300, slow_factor=8000))
    assert_landed(outcome, rows)
    # chunks 1-3 refused once while chunk 0 ran; then each sent only after the one before it ended
    assert outcome.creates == 7 and outcome.statuses == {"failed": 3, "completed": 4}, outcome.statuses
    assert outcome.printed.count("it waits until they end") == 3


# -- item 10: a batch that vanished --------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Restarter:
    """An emulator on a fixed loopback port, restarted (every batch forgotten) once the task has
    recorded its first batch: the next poll of that batch gets a 404."""

    def __init__(self, port: int, workspace: Path) -> None:
        self.port, self.workspace = port, workspace
        # the first emulator never starts answering: nothing is answered (or paid) before the restart
        self.emulator = Emulator(EmulatorConfig(port=port, validating_seconds=3600))
        self.emulator.start()
        self.before_restart: dict[str, Any] | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._restart_when_recorded, daemon=True)

    def _recorded(self) -> bool:
        for path in self.workspace.glob("**/manifest.json"):
            try:
                if any(c["batch_id"] for c in json.loads(path.read_text())["chunks"]):
                    return True
            except (OSError, ValueError):
                continue  # being written
        return False

    def _restart_when_recorded(self) -> None:
        while not self.stop.is_set():
            if self._recorded():
                self.before_restart = self.emulator.stats()["openai"]
                self.emulator.stop()
                self.emulator = Emulator(EmulatorConfig(port=self.port, validating_seconds=0.1,
                                                        requests_per_second=20_000.0, finalizing_seconds=0.1))
                self.emulator.start()
                return
            self.stop.wait(0.02)


@pytest.fixture
def restarter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Restarter]:
    restarting = Restarter(free_port(), tmp_path / "ws")
    monkeypatch.setenv("AIRFLOW_CONN_LLM_EMULATOR_RESTARTING", json.dumps(
        {"conn_type": "openai", "password": "test-key", "host": restarting.emulator.openai_base_url,
         "extra": {"max_retries": 6}}))
    restarting.thread.start()
    try:
        yield restarting
    finally:
        restarting.stop.set()
        restarting.thread.join()
        restarting.emulator.stop()


def test_a_batch_that_vanished_has_its_rows_sent_again_and_the_task_lands(
    restarter: Restarter, tmp_path: Path, printed: Any
) -> None:
    rows = {f"v{i}": f"item {i}" for i in range(20)}
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"id": k, "text": t}) + "\n" for k, t in rows.items()))
    dag_run = run_dag("llmb_resend_vanish", {"rows": f"file://{path}", "destination": f"file://{tmp_path}/out.jsonl",
                                             "workspace": f"file://{tmp_path}/ws"})
    text = printed()
    restarter.stop.set()
    restarter.thread.join()
    assert restarter.before_restart is not None, "the emulator was not restarted"
    after = restarter.emulator.stats()["openai"]
    assert task_states(dag_run) == {"batch": "success"}, text[-4000:]
    results = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sorted(r["key"] for r in results) == sorted(rows) and {r["status"] for r in results} == {"succeeded"}
    # sent to the first emulator once (never answered there), then once again after it forgot the batch
    old, new = restarter.before_restart, after
    assert old["batches_created"] == 1 and new["batches_created"] == 1
    assert old["requests_by_custom_id"] == dict.fromkeys(rows, 1) == new["requests_by_custom_id"]
    paid = Counter(old["succeeded_by_custom_id"]) + Counter(new["succeeded_by_custom_id"])
    assert paid == Counter(dict.fromkeys(rows, 1)), "every row paid exactly once"
    (vanished,) = old["batches"]
    assert f"Batch {vanished} of chunk 0 vanished: the provider answers 404" in text, text[-4000:]
    assert "Sending its 20 row(s) again" in text
