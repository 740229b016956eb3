"""A real run on the emulator whose workspace folder the report tests read."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.airflow_helpers import run_dag, task_states, xcom

ROWS = 100
FAILING = {7, 42, 77}
#: a word only the prompts contain: the report must not show it unless asked
PROMPT_WORD = "zanzibarquux"


@dataclass(frozen=True)
class ReportRun:
    workspace: Path
    folder: Path
    summary: dict[str, Any]
    batches_created: int
    report_link: Any = None  # what the task pushed for its "Run report" extra link


def run_for_report(tmp: Path, emulator: Any, dag_id: str = "ops_report") -> ReportRun:
    rows = tmp / "rows.jsonl"
    rows.write_text("".join(json.dumps({"id": f"r{i:03d}", "text": f"ticket {i} about {PROMPT_WORD}" + (
        " [[emulator:error:invalid_prompt]]" if i in FAILING else "")}) + "\n" for i in range(ROWS)))
    before = emulator.stats()["openai"]["batches_created"]
    dag_run = run_dag(dag_id, {"rows": f"file://{rows}", "destination": f"file://{tmp}/out.jsonl",
                                     "workspace": f"file://{tmp}/ws"})
    assert task_states(dag_run) == {"batch": "success"}
    (manifest,) = (tmp / "ws").rglob("manifest.json")
    return ReportRun(tmp / "ws", manifest.parent, xcom(dag_run, "batch"),
                     emulator.stats()["openai"]["batches_created"] - before,
                     xcom(dag_run, "batch", "_link_RunReportLink"))
