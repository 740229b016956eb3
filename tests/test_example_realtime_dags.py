"""The real-time example DAGs run for real (dag.test()) on the bundled emulator, counted on its side:
the self-hosted example on an OpenAI-compatible server WITHOUT batch routes runs in ``mode="auto"``
without error (one free probe, every row answered once in real time, no batch, no file, $0); the
nightly deadline example decides real time for a small night and batch for a big one."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_llm_batch.emulator import Emulator, EmulatorConfig
from tests.airflow_helpers import get_dag, task_states, xcom

pytestmark = pytest.mark.usefixtures("airflow_db")

FAST = EmulatorConfig(validating_seconds=0.1, requests_per_second=20_000.0, finalizing_seconds=0.1)


def example(dag_id: str) -> Any:
    """An example DAG as the test DAG folder loads it (tests/dags/example_dags_under_test.py)."""
    return get_dag(dag_id)


@pytest.fixture()
def self_hosted() -> Iterator[Emulator]:
    """An OpenAI-compatible server without a batch API, behind the example's ``vllm_local`` connection
    (no ``batch_api`` extra and no key: the probe decides, as on a fresh vLLM)."""
    emu = Emulator(FAST.replace(batch_api=False))
    emu.start()
    os.environ["AIRFLOW_CONN_VLLM_LOCAL"] = json.dumps({"conn_type": "openai", "host": emu.openai_base_url})
    try:
        yield emu
    finally:
        os.environ.pop("AIRFLOW_CONN_VLLM_LOCAL", None)
        emu.stop()


def write_rows(path: Path, count: int, field: str, make: Any) -> str:
    path.write_text("".join(json.dumps({field: f"r{i:04d}", **make(i)}) + "\n" for i in range(count)))
    return f"file://{path}"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_self_hosted_example_runs_in_auto_mode_on_a_server_without_batch_api(
        self_hosted: Emulator, tmp_path: Path) -> None:
    rows = write_rows(tmp_path / "articles.jsonl", 40, "article_id",
                      lambda i: {"title": f"Headline {i}", "body": f"Body of article {i}."})
    out = tmp_path / "summaries.jsonl"
    dag_run = example("self_hosted_summaries").test(
        run_conf={"articles_uri": rows, "results_uri": f"file://{out}"})
    assert task_states(dag_run) == {"summarise_articles": "success"}
    results = {r["key"]: r for r in read_jsonl(out)}
    assert len(results) == 40
    for i in range(40):
        row = results[f"r{i:04d}"]
        assert row["status"] == "succeeded" and row["answered_by"] == "realtime"
        assert f"Body of article {i}." in row["output"]  # each row joined to its own answer
    stats = self_hosted.stats()
    assert stats["realtime"]["answered"] == 40 and stats["realtime"]["bodies_paid_twice"] == 0
    assert stats["openai"]["batches_created"] == 0 and stats["openai"]["files_uploaded"] == 0
    assert stats["openai"]["api_requests"] == 41  # 40 chat calls and one probe of /v1/batches (a 404)
    summary = xcom(dag_run, "summarise_articles")
    assert summary["mode"]["mode"] == "realtime" and "batch API" in summary["mode"]["reason"]
    assert summary["rows_by_path"] == {"realtime": 40, "batch": 0, "cache": 0}


@pytest.mark.parametrize(("count", "hours_left", "expected"),
                         [(30, 48, "realtime"), (150, 48, "batch"), (150, 1, "realtime")])
def test_deadline_example_decides_by_volume_and_deadline(
        emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        count: int, hours_left: int, expected: str) -> None:
    """Under 100 rows: real time; 150 rows with two days left: batch; 150 rows with one hour left (the
    example expects a batch to take 3 h): real time. The deadline is pinned to an absolute time, as the
    example's "07:00" depends on the hour the test runs."""
    monkeypatch.setenv("AIRFLOW_CONN_OPENAI_DEFAULT", os.environ["AIRFLOW_CONN_LLM_EMULATOR"])
    before = emulator.stats()
    rows = write_rows(tmp_path / "reviews.jsonl", count, "review_id",
                      lambda i: {"text": f"Review {count}-{hours_left}-{i}: works as described."})
    out = tmp_path / "labels.jsonl"
    dag = example("nightly_deadline_auto")
    task = dag.get_task("label_reviews")
    task.poll_interval = 0.2
    task.deadline = (datetime.now(timezone.utc) + timedelta(hours=hours_left)).isoformat()
    dag_run = dag.test(run_conf={"reviews_uri": rows, "results_uri": f"file://{out}"})
    assert task_states(dag_run) == {"label_reviews": "success"}
    results = read_jsonl(out)
    assert len(results) == count and {r["answered_by"] for r in results} == {expected}
    after = emulator.stats()
    created = after["openai"]["batches_created"] - before["openai"]["batches_created"]
    answered = after["realtime"]["answered"] - before["realtime"]["answered"]
    assert (created > 0, answered) == ((True, 0) if expected == "batch" else (False, count))
    assert xcom(dag_run, "label_reviews")["mode"]["mode"] == expected
