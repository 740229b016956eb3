"""The BigQuery example DAG end to end, offline: ``python -m airflow_llm_batch.demo_bigquery``.

Starts the local Cloud Storage and BigQuery emulators (gcp-storage-emulator, bqemulator; dev
dependencies) and the bundled batch-API emulator, all on loopback; points ``google_cloud_default``
and ``openai_default`` at them; seeds a ``support.tickets`` table (yesterday's tickets plus a day
that must be ignored); runs ``nightly_ticket_triage_bigquery`` with ``dag.test()``; prints the
summary and what landed in ``support.ticket_triage``; and stops every process it started.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

from airflow_llm_batch.demo import use_demo_airflow

PROJECT = "demo-project"
DAG_ID = "nightly_ticket_triage_bigquery"
TASK_ID = "triage_tickets"
LOGICAL_DATE = dt.datetime(2026, 11, 22, 3, 0, tzinfo=dt.timezone.utc)
SUBJECTS = ["Charged twice for order", "App crashes on login", "Cannot reset my password",
            "Please add dark mode", "Where is my parcel?", "Refund not received", "Export to CSV broken"]


def seed_tickets(client: Any, table: str, day: dt.date, count: int, seed: int = 7) -> None:
    """``count`` tickets created on ``day`` and a few on the day before, loaded with a load job."""
    from google.cloud import bigquery

    rng = random.Random(seed)
    lines = []
    for i in range(count + 25):
        created = day if i < count else day - dt.timedelta(days=1)
        subject = rng.choice(SUBJECTS)
        lines.append(json.dumps({
            "ticket_id": f"T-{100000 + i}", "created_date": created.isoformat(), "subject": subject,
            "tier": rng.choice(["free", "plus", "business"]),
            "body": f"Hello, ticket {i}: {subject.lower()}. It happened {rng.randint(1, 5)} times this week."}))
    schema = [bigquery.SchemaField("ticket_id", "STRING", mode="REQUIRED"),
              bigquery.SchemaField("created_date", "DATE"), bigquery.SchemaField("subject", "STRING"),
              bigquery.SchemaField("tier", "STRING"), bigquery.SchemaField("body", "STRING")]
    config = bigquery.LoadJobConfig(source_format="NEWLINE_DELIMITED_JSON", schema=schema,
                                    write_disposition="WRITE_TRUNCATE")
    client.load_table_from_file(io.BytesIO("\n".join(lines).encode()), table, job_config=config).result()


def run_bigquery_demo(rows: int = 500, home: str = ".demo/bigquery") -> int:
    """Run the demo; returns 0 when every one of yesterday's ``rows`` tickets landed once."""
    root = Path(home).resolve()
    repo = Path(__file__).resolve().parent.parent
    use_demo_airflow(root)
    from airflow_llm_batch.emulator import Emulator, EmulatorConfig
    from airflow_llm_batch.google.emulators import (
        airflow_connection,
        start_bigquery_emulator,
        start_gcs_emulator,
    )

    with start_gcs_emulator(root / "gcs", project=PROJECT) as gcs, \
            start_bigquery_emulator(root / "bigquery", project=PROJECT, gcs=gcs) as bq, \
            Emulator(EmulatorConfig(host="127.0.0.1", port=0)) as llm:
        os.environ["AIRFLOW_CONN_OPENAI_DEFAULT"] = json.dumps(
            {"conn_type": "openai", "password": "emulator-key", "host": llm.openai_base_url})
        os.environ["AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"] = airflow_connection(gcs, bq)
        client = bq.client()
        client.create_dataset("support", exists_ok=True)
        tickets, triage = f"{PROJECT}.support.tickets", f"{PROJECT}.support.ticket_triage"
        yesterday = (LOGICAL_DATE - dt.timedelta(days=1)).date()
        seed_tickets(client, tickets, yesterday, rows)
        print(f"emulators: LLM {llm.openai_base_url}, BigQuery {bq.endpoint}, GCS {gcs.endpoint}", flush=True)
        print(f"seeded {tickets}: {rows} tickets on {yesterday} (+25 older ones the DAG must skip)", flush=True)
        dag_run = _run_dag(repo, {"tickets_table": tickets, "triage_table": triage})
        if dag_run is None:
            return 1
        summary = _summary(dag_run)
        landed = _landed(client, triage)
    print("\n=== nightly_ticket_triage_bigquery summary ===")
    print(json.dumps(summary, indent=2, default=str))
    print(f"\nrun state: {dag_run.state}; rows in {triage}: {landed['rows']} "
          f"({landed['keys']} distinct tickets); by category: {landed['by_category']}")
    ok = dag_run.state == "success" and landed["rows"] == landed["keys"] == rows
    return 0 if ok else 1


def _run_dag(repo: Path, conf: dict[str, str]) -> Any:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils import db

    db.resetdb()
    bag = DagBag(dag_folder=str(repo / "example_dags" / f"{DAG_ID}.py"))
    if bag.import_errors:
        print(f"DAG import errors: {bag.import_errors}")
        return None
    return bag.dags[DAG_ID].test(logical_date=LOGICAL_DATE, run_conf=conf)


def _landed(client: Any, table: str) -> dict[str, Any]:
    (totals,) = client.query(f"SELECT COUNT(*) AS n, COUNT(DISTINCT key) AS k FROM `{table}`").result()
    by_category = client.query(f"SELECT category, COUNT(*) AS n FROM `{table}` GROUP BY category "
                               f"ORDER BY category").result()
    return {"rows": totals["n"], "keys": totals["k"], "by_category": {r["category"]: r["n"] for r in by_category}}


def _summary(dag_run: Any) -> dict[str, Any] | None:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=TASK_ID,
                                                 key="return_value").first()
        return None if row is None else XComModel.deserialize_value(row)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m airflow_llm_batch.demo_bigquery", description=__doc__)
    parser.add_argument("--rows", type=int, default=500, help="tickets created yesterday (default 500)")
    parser.add_argument("--home", default=".demo/bigquery", help="folder for AIRFLOW_HOME, emulator data")
    args = parser.parse_args(argv)
    return run_bigquery_demo(rows=args.rows, home=args.home)


if __name__ == "__main__":
    sys.exit(main())
