"""The split form for custom flows: SubmitLLMBatchOperator -> LLMBatchSensor -> LLMBatchResultsOperator.

The three tasks share one workspace folder; the submit task returns a small handle (XCom) that the
other two take as ``handle``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any

from airflow.sdk import BaseOperator

from airflow_llm_batch.operators.failures import fail_without_retry
from airflow_llm_batch.operators.landing import collect_price, land, landing_context
from airflow_llm_batch.operators.paths import run_folder, run_tags
from airflow_llm_batch.operators.request_options import RequestOptions, with_request_params_doc
from airflow_llm_batch.operators.run_context import ProviderAccess, TaskRun
from airflow_llm_batch.operators.settings_checks import check_rate
from airflow_llm_batch.pipeline.cache import AnswerCache, CacheMode
from airflow_llm_batch.pipeline.manifest import Manifest
from airflow_llm_batch.pipeline.parsing import OutputParser, ResponseFormat
from airflow_llm_batch.pipeline.policy import RetryPolicy
from airflow_llm_batch.pipeline.prices import ModelPrice
from airflow_llm_batch.pipeline.run import BatchRun
from airflow_llm_batch.sources.rows import to_path


@with_request_params_doc
class SubmitLLMBatchOperator(RequestOptions):
    """Validate and submit every chunk; return a handle for the sensor and the results task.

    Example: ``submit = SubmitLLMBatchOperator(task_id="submit", model="gpt-4o-mini", rows=rows,
    prompt="Summarise: {{ row.text }}", key="id")`` then ``LLMBatchSensor(task_id="wait",
    handle=submit.output)`` (``from airflow_llm_batch.sensors import LLMBatchSensor``).

    Its parameters are RequestOptions' (below).
    """

    @fail_without_retry
    def execute(self, context: Any) -> dict[str, Any]:
        settings = self.request_settings()
        run = TaskRun(access=ProviderAccess.resolve(settings.provider, settings.conn_id, settings.provider_options),
                      folder=run_folder(settings.workspace, context), tags=run_tags(context),
                      cache=settings.answer_cache())
        manifest = self.prepare_manifest(run, settings, context)
        # as before the split form's submit records no in-flight requests in the cache
        replace(run, cache=None).call(lambda batch_run: batch_run.submit(manifest))
        return make_handle(run, manifest, settings.price(), settings.carry_columns)


def make_handle(run: TaskRun, manifest: Manifest, price: tuple[ModelPrice | None, str] = (None, ""),
                carry_columns: Sequence[str] | None = None) -> dict[str, Any]:
    """What the sensor and the results task need: ids, places and settings (the model's price as the
    submit task priced it, for the results task's cost), never secrets."""
    cache = run.cache
    cache_info = None if cache is None else {"root": str(cache.root), "mode": cache.mode.value,
                                             "ttl": cache.ttl_seconds}
    model_price, taken_on = price
    return {"provider": run.access.provider, "conn_id": run.access.conn_id, "provider_options": run.access.options,
            "folder": str(run.folder), "tags": run.tags, "cache": cache_info,
            "batch_ids": manifest.batch_ids, "total_rows": manifest.total_rows,
            "price": None if model_price is None else {**asdict(model_price), "taken_on": taken_on},
            "carry_columns": None if carry_columns is None else list(carry_columns)}


def price_from_handle(handle: dict[str, Any]) -> tuple[ModelPrice | None, str]:
    """The price the submit task used (None, "" for a handle without one: cost "unknown")."""
    info = dict(handle.get("price") or {})
    taken_on = str(info.pop("taken_on", ""))
    return (ModelPrice(**info) if info else None), taken_on


def cache_from_handle(handle: dict[str, Any]) -> AnswerCache | None:
    info = handle.get("cache")
    if not info:
        return None
    return AnswerCache(to_path(info["root"]), mode=CacheMode.parse(info["mode"]), ttl_seconds=info.get("ttl"))


class HandleUser(BaseOperator):
    """Base of the tasks that continue a submitted run from its handle."""

    template_fields: Sequence[str] = ("handle",)

    def __init__(self, *, handle: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.handle = handle

    def open_run(self, **engine: Any) -> TaskRun:
        """The submitted run, its manifest loaded (no SDK client is built for that); ``engine`` sets
        the BatchRun options of its provider calls (policy, cache)."""
        handle = self.handle
        if not isinstance(handle, dict) or "folder" not in handle:
            raise ValueError(f"handle must be the return value of SubmitLLMBatchOperator, got {handle!r}")
        access = ProviderAccess.resolve(handle["provider"], handle["conn_id"], handle.get("provider_options"))
        run = TaskRun(access=access, folder=to_path(handle["folder"]), tags=dict(handle["tags"]), **engine)
        run.load("was the workspace removed?")
        return run


class LLMBatchResultsOperator(HandleUser):
    """Download, join, parse and land the results of a submitted run; returns the XCom summary.

    Example: ``LLMBatchResultsOperator(task_id="land", handle=submit.output, response_format=Triage,
    destination="file:///data/triage.jsonl")``

    :param handle: the return value (XCom) of SubmitLLMBatchOperator (templated)
    :param response_format: how answers are parsed: None/"text", "json", a pydantic model class or a
        JSON schema dict (the one the submit task used)
    :param destination: where results land (templated), as LLMBatchOperator's ``destination``; None
        returns them in XCom (small runs only)
    :param min_success_rate: fail the task (after landing) if fewer rows succeed
    """

    template_fields: Sequence[str] = ("handle", "destination")

    def __init__(self, *, response_format: ResponseFormat = None, destination: str | None = None,
                 min_success_rate: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_rate(self.task_id, "min_success_rate", min_success_rate)
        self.response_format = response_format
        self.destination = destination
        self.min_success_rate = min_success_rate

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the destination as output (the rows source is the submit task's input)."""
        from airflow_llm_batch.operators.lineage import operator_lineage

        return operator_lineage(None, self.destination)

    @fail_without_retry
    def execute(self, context: Any) -> dict[str, Any]:
        # the split form does not resubmit: every row is final after one attempt
        run = self.open_run(policy=RetryPolicy(max_attempts=1), cache=cache_from_handle(self.handle))
        manifest, parser = run.manifest, OutputParser(self.response_format)

        async def _collect(batch_run: BatchRun) -> None:
            await batch_run.poll(manifest)
            if manifest.open_batch_ids:
                raise RuntimeError(f"batches {manifest.open_batch_ids} have not ended; put LLMBatchSensor "
                                   f"upstream of this task")
            await batch_run.collect(manifest, parser)
            batch_run.finalize(manifest, parser)  # rows answered from the cache or by a repeated request

        price, taken_on = price_from_handle(self.handle)
        priced_at_collect = collect_price(price, self.handle.get("carry_columns"))

        async def _priced_collect(batch_run: BatchRun) -> None:
            batch_run.collector.price = priced_at_collect  # results written as landed: landing copies them
            await _collect(batch_run)

        run.call(_priced_collect)
        landing = landing_context(context, parser, run.access.provider, manifest.model)
        return land(run.records(), manifest, landing=landing, destination=self.destination,
                    provider=run.access.provider, min_success_rate=self.min_success_rate, price=price,
                    prices_taken_on=taken_on)


__all__ = ["LLMBatchResultsOperator", "SubmitLLMBatchOperator", "make_handle", "run_folder", "run_tags"]
