"""The split form (SubmitLLMBatchOperator -> LLMBatchSensor -> LLMBatchResultsOperator), driven task by
task against real emulators: its documented import paths, the sensor's standard ``timeout`` reaching
its trigger (and ``wait_timeout`` kept as the former name), ``deferrable``'s default from
``[operators] default_deferrable``, and the results task's cost priced as the submit task priced it."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from airflow_llm_batch.emulator import Emulator, EmulatorConfig
from airflow_llm_batch.operators import LLMBatchOperator, LLMBatchResultsOperator, SubmitLLMBatchOperator
from airflow_llm_batch.sensors import LLMBatchSensor

ROWS = [{"id": f"s{i}", "text": f"item {i}"} for i in range(5)]


def task_context(task_id: str, run_id: str) -> dict[str, Any]:
    """The parts of a task's context the split form reads (its task instance's ids)."""
    ti = SimpleNamespace(dag_id="split_dag", task_id=task_id, run_id=run_id, map_index=-1, try_number=1)
    return {"ti": ti, "run_id": run_id}


def submit(tmp_path: Path, conn_id: str) -> dict[str, Any]:
    op = SubmitLLMBatchOperator(task_id="submit", conn_id=conn_id, model="gpt-4o-mini", key="id",
                                rows=[{**r, "id": f"{r['id']}-{uuid.uuid4().hex[:6]}"} for r in ROWS],
                                prompt="{{ row.text }}", workspace=f"file://{tmp_path}/ws", cache="off")
    context = task_context("submit", f"run-{uuid.uuid4().hex[:8]}")
    op.render_template_fields(context)  # as the task runner does: resolves the literal rows
    return dict(op.execute(context))


@pytest.fixture(scope="module")
def slow_emulator() -> Iterator[Emulator]:
    """Batches that stay in validation for minutes: a sensor always defers."""
    emu = Emulator(EmulatorConfig(host="127.0.0.1", port=0, validating_seconds=600.0))
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


def test_the_sensor_defers_with_its_standard_timeout(tmp_path: Path, slow_emulator: Emulator,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SLOW_EMULATOR", json.dumps(
        {"conn_type": "openai", "password": "k", "host": slow_emulator.openai_base_url}))
    handle = submit(tmp_path, "slow_emulator")
    sensor = LLMBatchSensor(task_id="wait", handle=handle, timeout=timedelta(hours=2), poll_interval=5)
    assert sensor.deferrable is True and sensor.timeout == 7200
    started = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(task_context("wait", handle["tags"]["run_id"]))
    timeout_at = deferred.value.trigger.timeout_at
    assert timeout_at is not None and started + 7200 <= timeout_at <= time.time() + 7200


def test_wait_timeout_is_the_former_name_of_timeout() -> None:
    sensor = LLMBatchSensor(task_id="wait", handle={}, wait_timeout=timedelta(minutes=5))
    assert sensor.timeout == 300 and sensor.wait_timeout == 300
    assert LLMBatchSensor(task_id="w2", handle={}, timeout=60).timeout == 60


@pytest.mark.parametrize(("setting", "expected"), [(None, True), ("False", False), ("True", True)])
def test_deferrable_defaults_to_the_operators_setting(setting: str | None, expected: bool,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    if setting is not None:
        monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", setting)
    op = LLMBatchOperator(task_id="t", model="m", rows=ROWS, prompt="{{ row.text }}")
    assert op.deferrable is expected
    assert LLMBatchSensor(task_id="w", handle={}).deferrable is expected
    assert LLMBatchSensor(task_id="w", handle={}, deferrable=not expected).deferrable is (not expected)


def test_a_default_written_into_airflow_cfg_does_not_turn_deferral_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """`airflow standalone` writes ``default_deferrable = False`` into airflow.cfg: not a choice."""
    from airflow.configuration import conf

    monkeypatch.delenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", raising=False)
    before = conf.get("operators", "default_deferrable", fallback=None)
    conf.set("operators", "default_deferrable", "False")
    try:
        assert LLMBatchOperator(task_id="t", model="m", rows=ROWS, prompt="{{ row.text }}").deferrable is True
        assert LLMBatchSensor(task_id="w", handle={}).deferrable is True
    finally:
        if before is None:
            conf.remove_option("operators", "default_deferrable", remove_default=False)
        else:
            conf.set("operators", "default_deferrable", before)


def test_the_results_task_reports_the_cost_the_submit_task_priced(tmp_path: Path, emulator: Any) -> None:
    handle = submit(tmp_path, "llm_emulator")
    assert handle["price"]["batch_input"] > 0 and handle["price"]["taken_on"]
    context = task_context("wait", handle["tags"]["run_id"])
    LLMBatchSensor(task_id="wait", handle=handle, deferrable=False, poll_interval=0.1).execute(context)
    summary = LLMBatchResultsOperator(task_id="land", handle=handle).execute(context)
    assert summary["succeeded"] == len(ROWS)
    assert summary["cost"]["price_known"] is True and summary["cost"]["batch_usd"] > 0
