"""`make demo`: the nightly ticket-triage example DAG, end to end in real Airflow, on the emulator.

Sets up an isolated AIRFLOW_HOME, starts the bundled emulator on loopback, points the
`openai_default` connection at it, writes a day of synthetic tickets, runs the DAG with
`dag.test()` (the deferrable task's trigger runs for real), then prints the XCom summary and
where the results file and the run report are.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

SUBJECTS = ["Charged twice for order", "App crashes on login", "Cannot reset my password",
            "Please add dark mode", "Where is my parcel?", "Refund not received", "Export to CSV broken"]
TIERS = ["free", "plus", "business"]


def write_tickets(path: Path, count: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for i in range(count):
            subject = rng.choice(SUBJECTS)
            body = f"Hello, ticket {i}: {subject.lower()}. It happened {rng.randint(1, 5)} times this week."
            fh.write(json.dumps({"ticket_id": f"T-{100000 + i}", "subject": subject, "tier": rng.choice(TIERS),
                                 "body": body}) + "\n")


def use_demo_airflow(root: Path) -> None:
    """Point this process's Airflow at a demo home under ``root`` and the repository's example DAGs."""
    repo = Path(__file__).resolve().parent.parent
    os.environ.update(
        AIRFLOW_HOME=str(root / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(repo / "example_dags"),
        AIRFLOW__API_AUTH__JWT_SECRET="demo-" + "x" * 64,
        AIRFLOW__LLM_BATCH__WORKSPACE=f"file://{root}/workspace",
        LLM_BATCH_DEMO_POLL_INTERVAL="1",
    )


def run_demo(rows: int, home: str) -> int:
    root = Path(home).resolve()
    repo = Path(__file__).resolve().parent.parent
    use_demo_airflow(root)
    from airflow_llm_batch.emulator import Emulator, EmulatorConfig

    ds = "2026-11-21"
    tickets = root / "data" / f"tickets-{ds}.jsonl"
    results = root / "results" / f"triage-{ds}.jsonl"
    write_tickets(tickets, rows)
    with Emulator(EmulatorConfig(host="127.0.0.1", port=0)) as emu:
        os.environ["AIRFLOW_CONN_OPENAI_DEFAULT"] = json.dumps(
            {"conn_type": "openai", "password": "emulator-key", "host": emu.openai_base_url})
        print(f"emulator: {emu.openai_base_url}  ({rows} tickets in {tickets})", flush=True)
        from airflow.dag_processing.dagbag import DagBag
        from airflow.utils import db

        db.resetdb()
        bag = DagBag(dag_folder=str(repo / "example_dags"))
        if bag.import_errors:
            print(f"DAG import errors: {bag.import_errors}")
            return 1
        dag = bag.dags["nightly_ticket_triage"]
        dag_run = dag.test(run_conf={"tickets_uri": f"file://{tickets}", "results_uri": f"file://{results}"})
        summary = _summary(dag_run)
    print("\n=== nightly_ticket_triage summary ===")
    print(json.dumps(summary, indent=2))
    print(f"run state: {dag_run.state}; results file: {results}")
    print(f"run report: {(summary or {}).get('report') or 'not written (see the task log)'}")
    if results.exists():
        with results.open() as fh:
            print("first result row:", fh.readline().strip())
    ok = dag_run.state == "success" and summary and summary["succeeded"] == rows
    return 0 if ok else 1


def _summary(dag_run: object) -> dict[str, Any] | None:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id,  # type: ignore[attr-defined]
                                                 task_id="triage_tickets", key="return_value").first()
        return None if row is None else XComModel.deserialize_value(row)
