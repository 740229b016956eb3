"""Settings are checked when the DAG is parsed, and the destination is proven writable before any
money moves (issue 10, item 7)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_llm_batch.operators import LLMBatchOperator, LLMBatchResultsOperator, SubmitLLMBatchOperator
from airflow_llm_batch.sensors.batch import LLMBatchSensor
from tests.airflow_helpers import run_dag, task_states

BASE = {"task_id": "t", "model": "gpt-4o-mini", "rows": [{"id": "a", "text": "x"}], "prompt": "{{ row.text }}"}


@pytest.mark.parametrize(("setting", "value"), [
    ("poll_interval", 0), ("poll_interval", -1.5), ("poll_interval", "30"),
    ("timeout", 0), ("timeout", timedelta(seconds=-5)),
    ("min_success_rate", 0), ("min_success_rate", 1.5), ("min_success_rate", 95), ("min_success_rate", -0.1),
    ("max_rows_per_chunk", 0), ("max_rows_per_chunk", 2.5), ("max_rows_per_chunk", True),
    ("max_attempts", 0), ("max_attempts", -1),
    ("deadline_margin", -1), ("deadline_margin", timedelta(minutes=-1)), ("deadline_margin", "5m"),
    ("realtime_latency_estimate", 0), ("realtime_latency_estimate", -0.5), ("realtime_latency_estimate", "2"),
])
def test_a_bad_setting_fails_at_construction_naming_it(setting: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf"task 't': {setting}=.* must be"):
        LLMBatchOperator(**BASE, **{setting: value})


def test_good_settings_construct() -> None:
    op = LLMBatchOperator(**BASE, poll_interval=0.5, timeout=timedelta(hours=1), min_success_rate=1,
                          max_rows_per_chunk=1, max_attempts=1)
    assert op.poll_interval == 0.5 and op.min_success_rate == 1
    LLMBatchOperator(**BASE, timeout=None, min_success_rate=None, max_rows_per_chunk=None)


@pytest.mark.parametrize("name", ["status", "key", "usage", "fingerprint", "cost_usd"])
def test_a_carried_column_named_as_a_result_field_fails_at_construction(name: str) -> None:
    """A carried ``status`` would replace the row's status in the results (and fail the reading back): it is
    refused when the DAG is parsed, with the clash named and a rename shown."""
    with pytest.raises(ValueError, match=rf"task 't': carry_columns \['{name}'\] clash with result fields.*"
                                         rf"SELECT {name} AS row_{name}"):
        LLMBatchOperator(**BASE, carry_columns=["ticket", name])
    with pytest.raises(ValueError, match="must be a list of column names"):
        LLMBatchOperator(**BASE, carry_columns="ticket")
    op = LLMBatchOperator(**BASE, carry_columns=["ticket", "priority", "ticket"])
    assert op.carry_columns == ["ticket", "priority", "ticket"]  # the parameter as given; settings dedupe


def test_the_split_form_checks_its_settings_too() -> None:
    with pytest.raises(ValueError, match="max_rows_per_chunk=0"):
        SubmitLLMBatchOperator(**BASE, max_rows_per_chunk=0)
    with pytest.raises(ValueError, match="poll_interval=0"):
        LLMBatchSensor(task_id="s", handle={}, poll_interval=0)
    with pytest.raises(ValueError, match="wait_timeout=-1"):
        LLMBatchSensor(task_id="s", handle={}, wait_timeout=-1)
    with pytest.raises(ValueError, match=r"min_success_rate=90 .*did you mean 0.9"):
        LLMBatchResultsOperator(task_id="r", handle={}, min_success_rate=90)


@pytest.mark.usefixtures("airflow_db")
def test_unwritable_destination_fails_before_anything_is_uploaded_without_retries(
    tmp_path: Path, emulator: Any
) -> None:
    rows = tmp_path / "rows.jsonl"
    token = uuid.uuid4().hex[:8]  # the session's emulator is shared: custom ids of this test only
    rows.write_text("".join(json.dumps({"id": f"unw{token}-{i}", "text": f"t{i}"}) + "\n" for i in range(20)))
    blocker = tmp_path / "a-file"
    blocker.write_text("the destination's parent is this file")
    before = emulator.stats()["openai"]
    dag_run = run_dag("llmb_unwritable_destination", {
        "rows": f"file://{rows}", "destination": f"file://{blocker}/results.jsonl",
        "workspace": f"file://{tmp_path}/ws"})
    after = emulator.stats()["openai"]
    assert task_states(dag_run) == {"batch": "failed"}
    (ti,) = dag_run.get_task_instances()
    assert ti.try_number == 1  # AirflowFailException: retries=2 were not used
    assert after["files_uploaded"] == before["files_uploaded"]
    assert after["batches_created"] == before["batches_created"]
    assert not any(token in k for k in after["requests_by_custom_id"])
