"""``estimate="api"``: the estimate's prompt tokens counted by the provider's count-tokens endpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_llm_batch.emulator import Emulator
from airflow_llm_batch.operators import LLMBatchOperator
from tests.airflow_helpers import run_dag, task_states, xcom

ROWS = 40


@pytest.mark.usefixtures("airflow_db")
def test_anthropic_estimate_is_the_emulators_count_and_each_row_is_counted_once(tmp_path: Path,
                                                                                 emulator: Emulator) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"id": f"r{i}", "text": f"The parcel number {i} arrived late and "
                                        "damaged; the customer wants a refund."}) + "\n" for i in range(ROWS)))
    before = emulator.stats()["realtime"].get("count_tokens_calls", 0)
    dag_run = run_dag("llmb_anthropic_estimate_api", {"rows": f"file://{rows}",
                                                      "destination": f"file://{tmp_path}/out.jsonl",
                                                      "workspace": f"file://{tmp_path}/ws"})
    assert task_states(dag_run) == {"extract": "success"}
    summary = xcom(dag_run, "extract")
    assert summary["succeeded"] == ROWS and summary["usage"]["cached_input_tokens"] == 0
    # the offline tokenizer also counts the tool schema's texts; the provider's count is what it bills
    assert summary["estimate"]["input_tokens"] == summary["usage"]["input_tokens"] > 0
    assert emulator.stats()["realtime"]["count_tokens_calls"] - before == ROWS


def test_an_unknown_estimate_method_fails_when_the_dag_is_parsed() -> None:
    with pytest.raises(ValueError, match=r"task 'bad': estimate='exact' .*\"tokenizer\".*\"api\""):
        LLMBatchOperator(task_id="bad", provider="anthropic", model="claude-haiku-4-5", rows=[{"id": 1}],
                         prompt="{{ row.id }}", estimate="exact")
