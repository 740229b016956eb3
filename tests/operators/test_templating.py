"""Templating (issue 14, item 5): ``request_params`` is a templated field rendered to native values by
Airflow's own rendering; prompts see the task's whole template context; a name missing from it is
reported as a context name before anything is sent, not as a row's missing column."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from airflow.sdk.execution_time.context import MacrosAccessor
from openai import AsyncOpenAI

from airflow_llm_batch.backends.openai import OpenAIBatchBackend
from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.operators import LLMBatchOperator, SubmitLLMBatchOperator
from airflow_llm_batch.operators.request_options import template_scope
from airflow_llm_batch.pipeline.render import RequestRenderer

ROWS = [{"id": "a", "text": "hello"}]
START = datetime(2026, 3, 1, tzinfo=timezone.utc)


def context() -> dict[str, Any]:
    """The names a task's template context holds (a subset of Airflow 3.3's, with real macros)."""
    return {"params": {"t": 0.2, "n": 3, "user": "team-a"}, "logical_date": START, "ds": "2026-03-01",
            "ds_nodash": "20260301", "data_interval_start": START, "data_interval_end": START,
            "macros": MacrosAccessor(), "run_id": "manual__1"}


def test_request_params_are_rendered_to_native_values_by_airflow() -> None:
    op = LLMBatchOperator(task_id="t", model="gpt-4o-mini", rows=ROWS, prompt="{{ row.text }}",
                          request_params={"temperature": "{{ params.t }}", "max_tokens": "{{ params.n * 10 }}",
                                          "user": "{{ params.user }}", "stop": ["{{ ds }}", "END"], "seed": 7})
    assert "request_params" in op.template_fields
    op.render_template_fields(context())
    params = op.request_settings().request_params
    assert params == {"temperature": 0.2, "max_tokens": 30, "user": "team-a", "stop": ["2026-03-01", "END"],
                      "seed": 7}
    assert isinstance(params["temperature"], float)


def test_the_sent_body_carries_the_rendered_params_and_context() -> None:
    op = SubmitLLMBatchOperator(
        task_id="t", model="gpt-4o-mini", rows=ROWS, request_params={"temperature": "{{ params.t }}"},
        prompt="{{ data_interval_start.year }} {{ macros.ds_add(ds, 1) }} {{ logical_date.month }} {{ row.text }}")
    op.render_template_fields(context())
    spec = op.request_settings().request_spec(template_scope(context()))
    request = RequestRenderer(spec).render(ROWS[0], custom_id="a", key="a")
    body = OpenAIBatchBackend(AsyncOpenAI(api_key="k", base_url="http://127.0.0.1:9/v1")).request_body(request)
    assert body["temperature"] == 0.2
    assert body["messages"][-1]["content"] == "2026 2026-03-02 3 hello"


def test_a_name_missing_from_the_context_is_reported_as_a_context_name() -> None:
    op = SubmitLLMBatchOperator(task_id="t", model="m", rows=ROWS, prompt="{{ next_ds }}: {{ row.text }}")
    with pytest.raises(InvalidInputError, match=r"prompt uses \['next_ds'\], which the task's template context "
                                                r"does not have"):
        RequestRenderer(op.request_settings().request_spec(template_scope(context())))


def test_a_literal_value_is_kept_as_written() -> None:
    op = LLMBatchOperator(task_id="t", model="m", rows=ROWS, prompt="{{ row.text }}",
                          request_params={"user": "0.5", "metadata": {"a": "{x}"}})
    op.render_template_fields(context())
    assert op.request_settings().request_params == {"user": "0.5", "metadata": {"a": "{x}"}}
