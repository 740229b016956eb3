"""``batch_options`` (issue 14, item 12): OpenAI's batch create options from the operator to the
backend's create call: ``metadata`` merged with this package's tags (a clash is refused at parse
time), ``output_expires_after`` checked; other providers refuse them instead of dropping them."""

from __future__ import annotations

import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from openai import OpenAI

from airflow_llm_batch.operators import SubmitLLMBatchOperator

ROWS = [{"id": "o1", "text": "one"}, {"id": "o2", "text": "two"}]


def make(**options: Any) -> SubmitLLMBatchOperator:
    return SubmitLLMBatchOperator(task_id="t", model="gpt-4o-mini", rows=ROWS, prompt="{{ row.text }}", **options)


def test_metadata_reaches_the_created_batch_beside_our_tags(tmp_path: Path, emulator: Any) -> None:
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    op = make(conn_id="llm_emulator", key="id", workspace=f"file://{tmp_path}/ws", cache="off",
              batch_options={"metadata": {"team": "data", "cost_center": "42"}, "output_expires_after": 86400})
    context = {"ti": SimpleNamespace(dag_id="d", task_id="t", run_id=run_id, map_index=-1, try_number=1)}
    op.render_template_fields(context)
    handle = op.execute(context)
    client = OpenAI(api_key="test-key", base_url=emulator.openai_base_url)
    (batch_id,) = handle["batch_ids"]
    metadata = client.batches.retrieve(batch_id).metadata or {}
    assert metadata["team"] == "data" and metadata["cost_center"] == "42"
    assert metadata["run_id"] == run_id and metadata["llm_batch_tag"]


@pytest.mark.parametrize(("options", "message"), [
    ({"metadata": {"run_id": "mine"}}, r"batch_options.metadata sets \['run_id'\]"),
    ({"metadata": {"a": 1}}, "must map names to strings"),
    ({"metadata": {f"k{i}": "v" for i in range(11)}}, "has 11 pairs; at most 10"),
    ({"output_expires_after": "1d"}, "output_expires_after must be seconds"),
    ({"output_expires_after": {"anchor": "completed_at", "seconds": 3600}}, "output_expires_after must be"),
    ({"completion_window": "48h"}, r"batch_options \['completion_window'\] unknown"),
])
def test_a_bad_option_fails_when_the_dag_is_parsed(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(batch_options=options)


def test_a_provider_without_them_refuses_them() -> None:
    with pytest.raises(ValueError, match=r"batch_options are supported for \['azure_openai', 'openai'\] only"):
        make(provider="anthropic", batch_options={"metadata": {"team": "data"}})


def test_they_travel_with_the_provider_options() -> None:
    settings = make(batch_options={"output_expires_after": 3600}).request_settings()
    assert settings.batch_options == {"output_expires_after": {"anchor": "created_at", "seconds": 3600}}
    assert settings.provider_options["batch_options"] == settings.batch_options
