"""Run one fault-matrix job in real Airflow under a fault plan, and read what it did on both sides: the
results file and XCom summary of the task, and the emulator's counters (submissions, billable answers,
batches) during the run, by custom_id."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_llm_batch.emulator import Emulator, FaultPlan
from tests.airflow_helpers import run_dag, task_states, xcom
from tests.faults import rows as job


@dataclass
class Outcome:
    state: str
    summary: dict[str, Any] | None
    results: list[dict[str, Any]]
    sent: Counter[str]  # submissions per custom_id during this run
    paid: Counter[str]  # successful (billable) answers per custom_id during this run
    batches: int
    new_batch_ids: list[str]
    answers_lost: int  # creates that worked whose answer the fault plan lost
    batch_statuses: Counter[str] = field(default_factory=Counter)


def run_job(emulator: Emulator, dag_id: str, plan: FaultPlan, folder: Path, *, stats_key: str = "openai",
            count: int = job.ROWS, prefix: str = "f") -> Outcome:
    """Write ``count`` rows keyed ``prefix00000``..., run ``dag_id`` with ``plan`` in force, and report."""
    before = emulator.stats()[stats_key]
    emulator.set_fault_plan(plan)
    try:
        dag_run = run_dag(dag_id, {"rows": f"file://{job.write(folder / 'rows.jsonl', count, prefix)}",
                                   "destination": f"file://{folder}/out.jsonl", "workspace": f"file://{folder}/ws"})
    finally:
        emulator.clear_fault_plan()
    after = emulator.stats()[stats_key]
    out = folder / "out.jsonl"
    return Outcome(
        state=task_states(dag_run)["batch"],
        summary=xcom(dag_run, "batch"),
        results=[json.loads(x) for x in out.read_text().splitlines()] if out.exists() else [],
        sent=_delta(before["requests_by_custom_id"], after["requests_by_custom_id"], prefix),
        paid=_delta(before["succeeded_by_custom_id"], after["succeeded_by_custom_id"], prefix),
        batches=after["batches_created"] - before["batches_created"],
        new_batch_ids=after["batches"][len(before["batches"]):],
        answers_lost=after["create_answers_lost"] - before["create_answers_lost"],
    )


def _delta(before: dict[str, int], after: dict[str, int], prefix: str) -> Counter[str]:
    return Counter({k: v - before.get(k, 0) for k, v in after.items()
                    if v - before.get(k, 0) and k.startswith(prefix)})


def assert_promises(outcome: Outcome, count: int = job.ROWS, prefix: str = "f") -> None:
    """Every input row ends as exactly one result (joined by key), and no request was paid twice."""
    keys = [r["key"] for r in outcome.results]
    assert len(keys) == count and set(keys) == set(job.keys(count, prefix)), "one result per row"
    assert max(outcome.paid.values(), default=0) <= 1, "a request was paid twice"
