"""Every public parameter of the operators, the sensor and the trigger is documented with ``:param:``
in the class docstring (issue 14, item 6); the prompts and request parameters are templated fields
with renderers, so the Rendered tab shows what was sent, while the prompts stay unrendered by Airflow
(rows are rendered one by one later)."""

from __future__ import annotations

import inspect

import pytest

from airflow_llm_batch.operators import LLMBatchOperator, LLMBatchResultsOperator, SubmitLLMBatchOperator
from airflow_llm_batch.sensors import LLMBatchSensor
from airflow_llm_batch.triggers.batch import LLMBatchTrigger


def own_parameters(cls: type) -> set[str]:
    """The keyword parameters of ``cls`` and of its bases in this package (not Airflow's)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass.__module__.startswith("airflow_llm_batch") and "__init__" in vars(klass):
            names |= {p.name for p in inspect.signature(klass.__init__).parameters.values()
                      if p.kind is p.KEYWORD_ONLY}
    return names


@pytest.mark.parametrize("cls", [LLMBatchOperator, SubmitLLMBatchOperator, LLMBatchSensor,
                                 LLMBatchResultsOperator, LLMBatchTrigger])
def test_every_public_parameter_is_documented(cls: type) -> None:
    doc = cls.__doc__ or ""
    missing = sorted(name for name in own_parameters(cls) if f":param {name}:" not in doc)
    assert not missing, f"{cls.__name__} lacks :param: for {missing}"


@pytest.mark.parametrize("cls", [LLMBatchOperator, SubmitLLMBatchOperator])
def test_prompts_and_params_show_in_the_rendered_tab_without_being_rendered(cls: type) -> None:
    assert {"prompt", "system_prompt", "request_params"} <= set(cls.template_fields)
    assert cls.template_fields_renderers == {"prompt": "jinja", "system_prompt": "jinja", "request_params": "json"}
    op = cls(task_id="t", model="m", rows=[{"id": "a", "text": "x"}], prompt="{{ ds }} {{ row.text }}",
             system_prompt="Be {{ params.tone }}.")
    op.render_template_fields({"ds": "2026-03-01", "params": {"tone": "brief"}})
    assert op.prompt == "{{ ds }} {{ row.text }}" and op.system_prompt == "Be {{ params.tone }}."
    settings = op.request_settings()
    assert settings.prompt == "{{ ds }} {{ row.text }}" and settings.system_prompt == "Be {{ params.tone }}."
