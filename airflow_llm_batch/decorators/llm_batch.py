"""``@task.llm_batch_job``: the decorated function returns the rows; the task runs them as a batch.

The name is not ``llm_batch``: apache-airflow-providers-common-ai owns ``@task.llm_batch`` (a different
operator), and both packages may be installed together. ``llm_batch_task`` stays importable from here
as an alias of :func:`llm_batch_job_task` for code written before the rename.

Example::

    @task.llm_batch_job(model="gpt-4o-mini", key="id", prompt="Summarise: {{ row.text }}",
                    destination="file:///data/summaries.jsonl")
    def tickets(ds=None):
        return [{"id": t.id, "text": t.body} for t in load_tickets(ds)]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from airflow.sdk.bases.decorator import DecoratedOperator, TaskDecorator, task_decorator_factory

from airflow_llm_batch.operators.batch import LLMBatchOperator


class _LLMBatchDecoratedOperator(DecoratedOperator, LLMBatchOperator):
    """Calls the function for its rows, then behaves exactly like LLMBatchOperator."""

    custom_operator_name = "@task.llm_batch_job"
    template_fields: Sequence[str] = (*DecoratedOperator.template_fields, *LLMBatchOperator.template_fields)

    def __init__(self, *, python_callable: Callable[..., Any], op_args: Any = None, op_kwargs: Any = None,
                 **kwargs: Any) -> None:
        kwargs.setdefault("rows", [])
        super().__init__(python_callable=python_callable, op_args=op_args, op_kwargs=op_kwargs, **kwargs)

    def execute(self, context: Any) -> Any:
        rows = self.python_callable(*self.op_args, **self.determine_kwargs(context))
        self.rows = rows if isinstance(rows, (list, tuple)) else list(rows)  # already past templating
        return LLMBatchOperator.execute(self, context)


def llm_batch_job_task(python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> TaskDecorator:
    """Wrap a function returning rows into an LLMBatchOperator task (see the module example)."""
    return task_decorator_factory(python_callable=python_callable,
                                  decorated_operator_class=_LLMBatchDecoratedOperator, **kwargs)


#: the name before 0.1.0's rename to ``@task.llm_batch_job`` (import path kept working)
llm_batch_task = llm_batch_job_task
