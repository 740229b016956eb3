"""The split form for custom flows: SubmitLLMBatchOperator -> LLMBatchSensor -> LLMBatchResultsOperator.

The three tasks share one workspace folder; the submit task returns a small handle (XCom) that the
other two take as ``handle``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from airflow_llm_batch.operators.failures import fail_without_retry
from airflow_llm_batch.operators.request_options import RequestOptions
from airflow_llm_batch.operators.run_context import (
    ProviderAccess,
    land,
    landing_context,
    parser_for,
    run_folder,
    run_tags,
)
from airflow_llm_batch.operators.settings_checks import check_rate
from airflow_llm_batch.pipeline.cache import AnswerCache, CacheMode
from airflow_llm_batch.pipeline.manifest import Manifest
from airflow_llm_batch.pipeline.parsing import ResponseFormat
from airflow_llm_batch.pipeline.policy import RetryPolicy
from airflow_llm_batch.pipeline.run import BatchRun
from airflow_llm_batch.sources.rows import to_path


class SubmitLLMBatchOperator(RequestOptions):
    """Validate and submit every chunk; return a handle for the sensor and the results task.

    Example: ``submit = SubmitLLMBatchOperator(task_id="submit", model="gpt-4o-mini", rows=rows,
    prompt="Summarise: {{ row.text }}", key="id")`` then ``LLMBatchSensor(task_id="wait",
    handle=submit.output)``.
    """

    @fail_without_retry
    def execute(self, context: Any) -> dict[str, Any]:
        access = ProviderAccess.resolve(self.provider, self.conn_id, self.provider_options)
        folder, tags = run_folder(self.workspace, context), run_tags(context)
        cache = self.answer_cache()
        manifest = self.prepare_manifest(access.offline_run(folder, tags, cache=cache), context)
        access.run(folder, tags, lambda run: run.submit(manifest))
        return make_handle(access, folder, tags, manifest, cache)


def make_handle(access: ProviderAccess, folder: Any, tags: dict[str, str], manifest: Manifest,
                cache: AnswerCache | None = None) -> dict[str, Any]:
    """What the sensor and the results task need: ids, places and settings, never secrets."""
    cache_info = None if cache is None else {"root": str(cache.root), "mode": cache.mode.value,
                                             "ttl": cache.ttl_seconds}
    return {"provider": access.provider, "conn_id": access.conn_id, "provider_options": access.options,
            "folder": str(folder), "tags": tags, "cache": cache_info,
            "batch_ids": manifest.batch_ids, "total_rows": manifest.total_rows}


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

    def open_run(self) -> tuple[ProviderAccess, Any, dict[str, str], Manifest]:
        handle = self.handle
        if not isinstance(handle, dict) or "folder" not in handle:
            raise ValueError(f"handle must be the return value of SubmitLLMBatchOperator, got {handle!r}")
        access = ProviderAccess.resolve(handle["provider"], handle["conn_id"], handle.get("provider_options"))
        folder, tags = to_path(handle["folder"]), dict(handle["tags"])
        manifest = BatchRun(folder, access.hook.backend_from_connection(access.conn), tags=tags).store.load()
        if manifest is None:
            raise FileNotFoundError(f"no manifest in {folder}: was the workspace removed?")
        return access, folder, tags, manifest


class LLMBatchResultsOperator(HandleUser):
    """Download, join, parse and land the results of a submitted run; returns the XCom summary.

    Example: ``LLMBatchResultsOperator(task_id="land", handle=submit.output, response_format=Triage,
    destination="file:///data/triage.jsonl")``
    """

    template_fields: Sequence[str] = ("handle", "destination")

    def __init__(self, *, response_format: ResponseFormat = None, destination: str | None = None,
                 min_success_rate: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_rate(self.task_id, "min_success_rate", min_success_rate)
        self.response_format = response_format
        self.destination = destination
        self.min_success_rate = min_success_rate

    @fail_without_retry
    def execute(self, context: Any) -> dict[str, Any]:
        access, folder, tags, manifest = self.open_run()

        async def _collect(run: BatchRun) -> None:
            await run.poll(manifest)
            if manifest.open_batch_ids:
                raise RuntimeError(f"batches {manifest.open_batch_ids} have not ended; put LLMBatchSensor "
                                   f"upstream of this task")
            parser = parser_for(self.response_format)
            await run.collect(manifest, parser)
            run.finalize(manifest, parser)  # rows answered from the cache or by a repeated request

        # the split form does not resubmit: every row is final after one attempt
        access.run(folder, tags, _collect, policy=RetryPolicy(max_attempts=1), cache=cache_from_handle(self.handle))
        landing = landing_context(context, parser_for(self.response_format), access.provider, manifest.model)
        return land(access.offline_run(folder, tags), manifest, landing=landing, destination=self.destination,
                    provider=access.provider, min_success_rate=self.min_success_rate)


__all__ = ["LLMBatchResultsOperator", "SubmitLLMBatchOperator", "make_handle", "run_folder", "run_tags"]
