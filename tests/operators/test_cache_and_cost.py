"""Cheapest path in real Airflow: the request cache, in-run fan-out, the budget stop and the cost
summary, counted on the emulator's side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from airflow_llm_batch.pipeline.prices import PriceTable
from tests.airflow_helpers import run_dag, task_states, xcom

pytestmark = pytest.mark.usefixtures("emulator", "airflow_db")


def write_rows(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"id": f"t{i:05d}", "text": t}) + "\n" for i, t in enumerate(texts)))
    return path


def sent(emulator: Any) -> int:
    return sum(emulator.stats()["openai"]["requests_by_custom_id"].values())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_second_nightly_run_pays_only_for_changed_rows(tmp_path: Path, emulator: Any) -> None:
    texts = [f"ticket {i}: printer on fire" for i in range(10_000)]
    workspace = f"file://{tmp_path}/ws"
    before = sent(emulator)
    first = run_dag("llmb_cache", {"rows": f"file://{write_rows(tmp_path / 'day1.jsonl', texts)}",
                                   "destination": f"file://{tmp_path}/day1-out.jsonl", "workspace": workspace})
    assert task_states(first) == {"batch": "success"}
    assert sent(emulator) - before == 10_000

    changed = [f"ticket {i}: printer fixed" if i % 20 == 0 else t for i, t in enumerate(texts)]  # 500 rows
    before = sent(emulator)
    second = run_dag("llmb_cache", {"rows": f"file://{write_rows(tmp_path / 'day2.jsonl', changed)}",
                                    "destination": f"file://{tmp_path}/day2-out.jsonl", "workspace": workspace})
    assert task_states(second) == {"batch": "success"}
    assert sent(emulator) - before == 500
    results = read_jsonl(tmp_path / "day2-out.jsonl")
    assert len(results) == 10_000 and {r["status"] for r in results} == {"succeeded"}
    assert sum(r["cached"] for r in results) == 9_500
    by_key = {r["key"]: r for r in results}
    assert by_key["t00020"]["output"] == "ticket 20: printer fixed" and not by_key["t00020"]["cached"]
    assert by_key["t00021"]["output"] == "ticket 21: printer on fire" and by_key["t00021"]["cached"]
    summary = xcom(second, "batch")
    assert summary["cached_rows"] == 9_500 and summary["sent_rows"] == 500
    assert summary["cost"]["cached_rows"] == 9_500 and summary["cost"]["cached_saving_usd"] > 0


def test_identical_prompts_in_one_run_are_sent_once(tmp_path: Path, emulator: Any) -> None:
    texts = [f"question {i % 100}" for i in range(1_000)]
    before = sent(emulator)
    dag_run = run_dag("llmb_cache", {"rows": f"file://{write_rows(tmp_path / 'rows.jsonl', texts)}",
                                     "destination": f"file://{tmp_path}/out.jsonl",
                                     "workspace": f"file://{tmp_path}/ws"})
    assert task_states(dag_run) == {"batch": "success"}
    assert sent(emulator) - before == 100
    results = read_jsonl(tmp_path / "out.jsonl")
    assert len(results) == 1_000 and len({r["key"] for r in results}) == 1_000
    assert all(r["output"] == texts[int(r["key"][1:])] for r in results)
    assert sum(r["cached"] for r in results) == 900


def test_budget_below_estimate_stops_before_any_batch(tmp_path: Path, emulator: Any) -> None:
    rows = write_rows(tmp_path / "rows.jsonl", [f"long text {i} " * 20 for i in range(300)])
    before = emulator.stats()["openai"]["batches_created"], emulator.stats()["openai"]["files_uploaded"]
    dag_run = run_dag("llmb_budget", {"rows": f"file://{rows}", "destination": f"file://{tmp_path}/o.jsonl",
                                      "workspace": f"file://{tmp_path}/ws"})
    states = task_states(dag_run)
    assert states["batch"] == "failed"  # no retry either: retries=3 but a budget stop is final
    (ti,) = [t for t in dag_run.get_task_instances() if t.task_id == "batch"]
    assert ti.try_number == 1
    assert (emulator.stats()["openai"]["batches_created"], emulator.stats()["openai"]["files_uploaded"]) == before
    dry = xcom(dag_run, "dry")
    assert states["dry"] == "success" and dry["dry_run"] and dry["to_send"] == 300
    assert dry["estimate"]["price_known"] and dry["estimate"]["batch_usd"] > 0


def test_cost_summary_matches_emulator_usage_times_price_table(tmp_path: Path, emulator: Any) -> None:
    rows = write_rows(tmp_path / "rows.jsonl", [f"cost check {i}" for i in range(400)])
    dag_run = run_dag("llmb_cache", {"rows": f"file://{rows}", "destination": f"file://{tmp_path}/o.jsonl",
                                     "workspace": f"file://{tmp_path}/ws"})
    summary = xcom(dag_run, "batch")
    with OpenAI(base_url=emulator.openai_base_url, api_key="k") as client:
        usages = [client.batches.retrieve(b).usage for b in summary["batch_ids"]]
    input_tokens = sum(u.input_tokens for u in usages)
    output_tokens = sum(u.output_tokens for u in usages)
    assert (summary["usage"]["input_tokens"], summary["usage"]["output_tokens"]) == (input_tokens, output_tokens)
    price = PriceTable.default().price_for("openai", "gpt-4o-mini")
    assert price is not None
    expected = (input_tokens * price.batch_input + output_tokens * price.batch_output) / 1_000_000
    assert summary["cost"]["batch_usd"] == pytest.approx(expected, rel=1e-9)
    realtime = (input_tokens * price.input + output_tokens * price.output) / 1_000_000
    assert summary["cost"]["realtime_usd"] == pytest.approx(realtime, rel=1e-9)
    assert summary["cost"]["saving_usd"] == pytest.approx(realtime - expected, rel=1e-9)
    landed = read_jsonl(tmp_path / "o.jsonl")
    assert sum(r["cost_usd"] for r in landed) == pytest.approx(expected, rel=1e-6)
