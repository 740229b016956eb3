"""LLMBatchOperator in real Airflow (dag.test(), trigger run inline) against the bundled emulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.airflow_helpers import run_dag, task_states, xcom

pytestmark = pytest.mark.usefixtures("emulator", "airflow_db")


def write_rows(path: Path, count: int, **extra: Any) -> Path:
    with path.open("w") as fh:
        for i in range(count):
            fh.write(json.dumps({"id": f"r{i:05d}", "text": f"payload {i} {{{{ 1 + {i} }}}}", **extra}) + "\n")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_2500_rows_in_three_chunks_every_row_joined_to_its_input(tmp_path: Path, emulator: Any) -> None:
    rows = write_rows(tmp_path / "rows.jsonl", 2500)
    dest = tmp_path / "out" / "results.jsonl"
    before = emulator.stats()["openai"]["batches_created"]
    dag_run = run_dag("llmb_operator", {"rows": f"file://{rows}", "destination": f"file://{dest}",
                                        "workspace": f"file://{tmp_path}/ws"})
    assert task_states(dag_run) == {"batch": "success"}
    summary = xcom(dag_run, "batch")
    assert summary["total"] == summary["succeeded"] == 2500 and summary["failed"] == 0
    assert len(summary["batch_ids"]) == 3
    assert emulator.stats()["openai"]["batches_created"] - before == 3
    assert summary["usage"]["input_tokens"] > 0 and summary["destination"] == f"file://{dest}"
    results = read_jsonl(dest)
    assert len(results) == 2500 and len({r["key"] for r in results}) == 2500
    for result in results:
        i = int(result["key"][1:])
        # the emulator answers string fields with the prompt: the prompt carries the row's own data,
        # unrendered (row values are never templates)
        assert result["parsed"]["label"].startswith(f"Item r{i:05d}: payload {i} {{{{ 1 + {i} }}}}"[:400])
        assert 0 <= result["parsed"]["score"] <= 10
        assert result["status"] == "succeeded" and result["batch_id"] in summary["batch_ids"]


def test_retried_task_reattaches_instead_of_submitting(tmp_path: Path, emulator: Any) -> None:
    """Try 1 submits, waits, then dies; try 2 finds the manifest, pays nothing and lands everything."""
    rows = write_rows(tmp_path / "rows.jsonl", 900)
    before = emulator.stats()["openai"]
    dag_run = run_dag("llmb_retry", {"rows": f"file://{rows}", "destination": f"file://{tmp_path}/r.jsonl",
                                     "workspace": f"file://{tmp_path}/ws"})
    after = emulator.stats()["openai"]
    assert task_states(dag_run) == {"batch": "success"}
    (ti,) = dag_run.get_task_instances()
    assert ti.try_number == 2
    assert after["batches_created"] - before["batches_created"] == 3  # 900 rows / 300 per chunk, once
    paid = {k: v for k, v in after["requests_by_custom_id"].items() if k.startswith("r")}
    assert all(paid[f"r{i:05d}"] - before["requests_by_custom_id"].get(f"r{i:05d}", 0) == 1 for i in range(900))
    assert len(read_jsonl(tmp_path / "r.jsonl")) == 900


def test_bad_rows_fail_before_any_batch_exists(tmp_path: Path, emulator: Any) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in
                              [{"id": "a", "text": "x"}, {"id": "b"}, {"id": "a", "text": "y"}]) + "\n")
    before = emulator.stats()["openai"]["files_uploaded"], emulator.stats()["openai"]["batches_created"]
    dag_run = run_dag("llmb_operator", {"rows": f"file://{path}", "destination": f"file://{tmp_path}/x.jsonl",
                                        "workspace": f"file://{tmp_path}/ws"})
    assert task_states(dag_run) == {"batch": "failed"}
    after = emulator.stats()["openai"]["files_uploaded"], emulator.stats()["openai"]["batches_created"]
    assert after == before
    assert not (tmp_path / "x.jsonl").exists()


def test_split_form_submit_sensor_results(tmp_path: Path, emulator: Any) -> None:
    rows = write_rows(tmp_path / "rows.jsonl", 1000)
    dest = tmp_path / "split.jsonl"
    dag_run = run_dag("llmb_split", {"rows": f"file://{rows}", "destination": f"file://{dest}",
                                     "workspace": f"file://{tmp_path}/ws"})
    assert task_states(dag_run) == {"submit": "success", "wait": "success", "land": "success"}
    handle = xcom(dag_run, "submit")
    assert len(handle["batch_ids"]) == 3 and "api_key" not in json.dumps(handle)
    summary = xcom(dag_run, "land")
    assert summary["succeeded"] == 1000
    results = {r["key"]: r for r in read_jsonl(dest)}
    assert results["r00042"]["output"] == "payload 42 {{ 1 + 42 }}"


def test_sync_mode_returns_results_through_xcom(tmp_path: Path) -> None:
    rows = write_rows(tmp_path / "rows.jsonl", 40)
    dag_run = run_dag("llmb_sync", {"rows": f"file://{rows}", "workspace": f"file://{tmp_path}/ws"})
    assert task_states(dag_run) == {"batch": "success"}
    summary = xcom(dag_run, "batch")
    assert summary["destination"] is None and len(summary["results"]) == 40
    assert {r["key"]: r["output"] for r in summary["results"]}["r00007"] == "payload 7 {{ 1 + 7 }}"


def test_split_form_second_run_is_answered_from_the_cache(tmp_path: Path, emulator: Any) -> None:
    rows = write_rows(tmp_path / "rows.jsonl", 300)
    conf = {"rows": f"file://{rows}", "workspace": f"file://{tmp_path}/ws"}
    first = run_dag("llmb_split", {**conf, "destination": f"file://{tmp_path}/a.jsonl"})
    assert task_states(first) == {"submit": "success", "wait": "success", "land": "success"}
    before = sum(emulator.stats()["openai"]["requests_by_custom_id"].values())
    second = run_dag("llmb_split", {**conf, "destination": f"file://{tmp_path}/b.jsonl"})
    assert task_states(second) == {"submit": "success", "wait": "success", "land": "success"}
    assert sum(emulator.stats()["openai"]["requests_by_custom_id"].values()) == before  # nothing sent
    assert xcom(second, "submit")["batch_ids"] == []
    landed = read_jsonl(tmp_path / "b.jsonl")
    assert len(landed) == 300 and all(r["cached"] for r in landed)
    assert {r["key"]: r["output"] for r in landed} == {r["key"]: r["output"] for r in read_jsonl(tmp_path / "a.jsonl")}
