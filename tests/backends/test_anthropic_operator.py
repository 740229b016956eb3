"""LLMBatchOperator with provider="anthropic" in real Airflow (dag.test(), trigger run inline) against
the bundled emulator: thousands of rows, several chunks, structured answers, keys Anthropic would refuse."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from airflow_llm_batch.emulator import Emulator
from tests.airflow_helpers import run_dag, task_states, xcom

pytestmark = pytest.mark.usefixtures("emulator", "airflow_db")

ANTHROPIC_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def row_keys(count: int) -> list[str]:
    """Mostly plain keys, and every kind Anthropic refuses as a custom_id: spaces, unicode, 100 chars."""
    run = uuid.uuid4().hex[:6]
    odd = [f"order {run} {{i}}", f"facture-é-{run}-{{i}}", f"{run}/顧客/{{i}}", f"{run}-{{i}}-" + "x" * 100]
    return [odd[i % 8].format(i=i) if i % 8 < len(odd) else f"{run}-r{i:05d}" for i in range(count)]


def write_rows(path: Path, keys: list[str]) -> dict[str, dict[str, Any]]:
    rows = {key: {"id": key, "text": f"payload {n} {{{{ 1 + {n} }}}}"} for n, key in enumerate(keys)}
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows.values()))
    return rows


def test_2500_rows_in_three_chunks_every_row_joined_with_its_own_key(tmp_path: Path,
                                                                     emulator: Emulator) -> None:
    keys = row_keys(2500)
    rows = write_rows(tmp_path / "rows.jsonl", keys)
    dest = tmp_path / "out" / "results.jsonl"
    before = emulator.stats()["anthropic"]
    dag_run = run_dag("llmb_anthropic_operator", {"rows": f"file://{tmp_path}/rows.jsonl",
                                                  "destination": f"file://{dest}",
                                                  "workspace": f"file://{tmp_path}/ws"})
    after = emulator.stats()["anthropic"]
    assert task_states(dag_run) == {"extract": "success"}

    summary = xcom(dag_run, "extract")
    assert (summary["total"], summary["succeeded"], summary["failed"]) == (2500, 2500, 0)
    assert len(summary["batch_ids"]) == 3 and after["batches_created"] - before["batches_created"] == 3
    assert summary["usage"]["cached_input_tokens"] > 0  # the system prompt was cached

    results = [json.loads(line) for line in dest.read_text().splitlines()]
    assert sorted(r["key"] for r in results) == sorted(keys)
    for result in results:
        row = rows[result["key"]]
        assert result["status"] == "succeeded" and result["batch_id"] in summary["batch_ids"]
        # the emulator fills free text with the prompt: the answer carries its own row, unrendered
        assert result["parsed"]["source"] == f"Row {row['id']}: {row['text']}"
        assert 1 <= result["parsed"]["urgency"] <= 5
        assert ANTHROPIC_ID.fullmatch(result["custom_id"])

    mapped = {r["key"]: r["custom_id"] for r in results if r["custom_id"] != r["key"]}
    refused = {key for key in keys if not ANTHROPIC_ID.fullmatch(key)}
    assert set(mapped) == refused and len(refused) == 1252
    assert all(custom_id.startswith("k_") for custom_id in mapped.values())
    sent = {c: after["requests_by_custom_id"][c] - before["requests_by_custom_id"].get(c, 0)
            for c in (r["custom_id"] for r in results)}
    assert set(sent.values()) == {1}  # every row paid once
