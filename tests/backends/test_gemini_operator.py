"""LLMBatchOperator with provider="gemini" in real Airflow (dag.test(), trigger run inline) against the
bundled emulator: a small input goes inline, an input over 20 MB goes through the Files API; every row
is joined to its own input by key and parsed into the pydantic response_format."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_llm_batch.emulator import Emulator
from tests.airflow_helpers import run_dag, task_states, xcom
from tests.dags.gemini_test_dags import Reading

pytestmark = pytest.mark.usefixtures("airflow_db")

CONN_ENV = "AIRFLOW_CONN_GEMINI_EMULATOR"
KEY = "test-key"
INLINE_LIMIT = 20 * 1024 * 1024


@pytest.fixture(scope="module")
def gemini_emulator(emulator: Emulator) -> Iterator[Emulator]:
    """The session emulator, reached through a ``gemini`` connection named in the test DAG."""
    previous = os.environ.get(CONN_ENV)
    os.environ[CONN_ENV] = json.dumps({"conn_type": "gemini", "password": KEY, "host": emulator.url})
    try:
        yield emulator
    finally:
        if previous is None:
            os.environ.pop(CONN_ENV, None)
        else:
            os.environ[CONN_ENV] = previous


def write_rows(path: Path, count: int, filler: str = "") -> dict[str, dict[str, Any]]:
    run = uuid.uuid4().hex[:6]
    keys = [f"ticket {run}/{i:05d}" if i % 3 else f"{run}-é-{i}" for i in range(count)]
    rows = {key: {"id": key, "text": f"payload {n} {{{{ {n} }}}} {filler}".rstrip()} for n, key in enumerate(keys)}
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows.values()), encoding="utf-8")
    return rows


def run_and_check(tmp_path: Path, emulator: Emulator, rows: dict[str, dict[str, Any]]) -> tuple[dict[str, Any],
                                                                                                dict[str, Any]]:
    """Run the DAG; check every row came back once, joined to its own input. Returns (summary, stats delta)."""
    dest = tmp_path / "out" / "results.jsonl"
    before = emulator.stats()["gemini"]
    dag_run = run_dag("llmb_gemini_operator", {"rows": f"file://{tmp_path}/rows.jsonl",
                                               "destination": f"file://{dest}",
                                               "workspace": f"file://{tmp_path}/ws"})
    after = emulator.stats()["gemini"]
    assert task_states(dag_run) == {"read": "success"}
    summary = xcom(dag_run, "read")
    assert (summary["total"], summary["succeeded"], summary["failed"]) == (len(rows), len(rows), 0)
    assert KEY not in json.dumps(summary) and KEY not in json.dumps(xcom(dag_run, "read", "batch_ids"))

    results = [json.loads(line) for line in dest.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["key"] for r in results) == sorted(rows)
    for result in results:
        row = rows[result["key"]]
        assert result["status"] == "succeeded" and result["batch_id"] in summary["batch_ids"]
        reading = Reading.model_validate(result["parsed"])
        # the emulator fills free text with the prompt: the answer carries its own row, unrendered
        assert reading.source == f"Row {row['id']}: {row['text']}"
        assert result["usage"]["input_tokens"] > 0 and result["usage"]["output_tokens"] > 0
    sent = {key: after["requests_by_custom_id"][key] - before["requests_by_custom_id"].get(key, 0) for key in rows}
    assert set(sent.values()) == {1}  # every row paid once
    delta = {name: after[name] - before[name] for name in ("batches_created", "files_uploaded")}
    return summary, delta


def test_small_input_goes_inline(tmp_path: Path, gemini_emulator: Emulator) -> None:
    rows = write_rows(tmp_path / "rows.jsonl", 600)
    summary, delta = run_and_check(tmp_path, gemini_emulator, rows)
    assert len(summary["batch_ids"]) == 1 and all(b.startswith("batches/") for b in summary["batch_ids"])
    assert delta == {"batches_created": 1, "files_uploaded": 0}  # inline: nothing uploaded


def test_input_over_20_mb_goes_through_the_files_api(tmp_path: Path, gemini_emulator: Emulator) -> None:
    rows = write_rows(tmp_path / "rows.jsonl", 2300, filler="lorem ipsum dolor sit amet " * 340)
    summary, delta = run_and_check(tmp_path, gemini_emulator, rows)
    chunks = list((tmp_path / "ws").rglob("chunks/*.requests.jsonl"))
    assert len(chunks) == 1 and chunks[0].stat().st_size > INLINE_LIMIT  # one chunk, too big to go inline
    assert len(summary["batch_ids"]) == 1
    assert delta == {"batches_created": 1, "files_uploaded": 1}  # the chunk went as a file
