"""The parameters that define the requests (shared by LLMBatchOperator and SubmitLLMBatchOperator)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_llm_batch.exceptions import BudgetExceededError, InvalidInputError
from airflow_llm_batch.hooks.options import check_options
from airflow_llm_batch.operators.effective_prices import effective_price
from airflow_llm_batch.operators.run_context import default_workspace
from airflow_llm_batch.operators.settings_checks import check_count
from airflow_llm_batch.pipeline.cache import AnswerCache, CacheMode
from airflow_llm_batch.pipeline.cost import CostEstimate, check_budget, estimate_cost
from airflow_llm_batch.pipeline.manifest import ChunkRecord, Manifest, describe_resume
from airflow_llm_batch.pipeline.parsing import OutputParser, ResponseFormat
from airflow_llm_batch.pipeline.prices import ModelPrice
from airflow_llm_batch.pipeline.render import RequestSpec
from airflow_llm_batch.pipeline.request_params import check_request_params
from airflow_llm_batch.pipeline.run import BatchRun
from airflow_llm_batch.pipeline.types import Endpoint
from airflow_llm_batch.sources.literal import check_json_rows
from airflow_llm_batch.sources.rows import rows_factory, to_path


class LiteralRows:
    """Rows given as a Python list: Airflow must not render the strings inside them as templates
    (a ticket saying ``{{ 1 + 1 }}`` stays as written). Templating calls ``resolve`` instead."""

    def __init__(self, rows: Sequence[Any]) -> None:
        check_json_rows(rows)
        self.rows = rows

    def resolve(self, context: Any) -> Sequence[Any]:
        return self.rows

    def __repr__(self) -> str:
        return f"<{len(self.rows)} rows>"


class RequestOptions(BaseOperator):
    """Base of the operators that build requests from rows.

    :param provider: "openai" (more to come: "anthropic", "gemini", "vertex")
    :param conn_id: Airflow connection; defaults to the provider's default (e.g. ``openai_default``)
    :param model: model name (templated)
    :param rows: list of dicts, an upstream XComArg, or a URI of a JSONL/CSV file (templated)
    :param prompt: Jinja template of the user message, rendered per row in a sandbox with ``row`` in
        scope (row values are data, never evaluated) and the run's ``ds``, ``ds_nodash``, ``run_id``,
        ``dag_id``, ``task_id`` and ``params``; Airflow does not render it a second time
    :param system_prompt: Jinja template of the system message (same scope)
    :param key: column holding a unique id per row (else a stable hash of the row)
    :param response_format: None/"text", "json", a pydantic model class, or a JSON schema dict
    :param request_params: extra body parameters (temperature, max_tokens...); names the operator sets
        itself (model, messages, input, custom_id... see pipeline/request_params.py) are refused
    :param endpoint: "chat_completions" (default), "responses" or "embeddings"
    :param workspace: object storage URI holding run state (default ``[llm_batch] workspace`` or
        ``$AIRFLOW_HOME/llm_batch_workspace``)
    :param max_rows_per_chunk: cap requests per batch below the provider's limit
    :param carry_columns: input columns copied into each result row
    :param cache: request cache mode: "read_write" (default), "read", "write" or "off". Rows whose
        request (model, messages, params, schema) was answered before are answered from the cache, and
        identical requests within the run are sent once; "off" sends every row
    :param cache_ttl: ignore cached answers older than this (seconds or timedelta); None = no expiry
    :param cache_location: where answers are kept (default ``{workspace}/_cache``)
    :param max_cost_usd: stop before submitting when the estimate is over this (BudgetExceededError)
    :param prices: per provider/model price overrides in USD per 1M tokens, e.g.
        ``{"openai": {"my-ft-model": {"input": 0.3, "output": 1.2}}}``
    :param expected_output_tokens: expected answer size per row, for the estimate
    :param dry_run: render, validate and estimate only; nothing is submitted
    :param provider_options: this task's overrides of the connection's extras, e.g.
        ``{"vertex_staging_uri": "gs://bucket/staging", "vertex_location": "europe-west4"}`` or
        ``{"inline_max_bytes": 0}``; never secrets (refused: they would be stored with the trigger)
    """

    template_fields: Sequence[str] = ("model", "rows", "workspace", "conn_id")

    def __init__(
        self,
        *,
        model: str,
        rows: Any,
        prompt: str,
        provider: str = "openai",
        conn_id: str | None = None,
        system_prompt: str | None = None,
        key: str | None = None,
        response_format: ResponseFormat = None,
        request_params: dict[str, Any] | None = None,
        endpoint: str = "chat_completions",
        workspace: str | None = None,
        max_rows_per_chunk: int | None = None,
        carry_columns: Sequence[str] = (),
        cache: str = "read_write",
        cache_ttl: timedelta | float | None = None,
        cache_location: str | None = None,
        max_cost_usd: float | None = None,
        prices: dict[str, dict[str, dict[str, float]]] | None = None,
        expected_output_tokens: int = 256,
        dry_run: bool = False,
        provider_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.provider = provider
        self.conn_id = conn_id
        self.model = model
        self.rows = LiteralRows(rows) if isinstance(rows, (list, tuple)) else rows
        self.prompt = prompt
        self.system_prompt = system_prompt
        self.key = key
        self.response_format = response_format
        self.request_params = dict(request_params or {})
        self.endpoint = Endpoint.parse(endpoint)
        check_request_params(provider, self.endpoint, self.request_params)
        self.workspace = workspace
        check_count(self.task_id, "max_rows_per_chunk", max_rows_per_chunk, optional=True)
        self.max_rows_per_chunk = max_rows_per_chunk
        self.carry_columns = tuple(carry_columns)
        self.cache = CacheMode.parse(cache)
        self.cache_ttl = cache_ttl.total_seconds() if isinstance(cache_ttl, timedelta) else cache_ttl
        self.cache_location = cache_location
        self.max_cost_usd = max_cost_usd
        self.prices = prices
        self.expected_output_tokens = expected_output_tokens
        self.provider_options = check_options(provider_options)
        # stored under another name: BaseOperator.dry_run() is a method Airflow calls
        self.estimate_only = dry_run
        OutputParser(response_format)  # fail at DAG parse time on a bad response_format

    def request_spec(self, context: Any) -> RequestSpec:
        parser = OutputParser(self.response_format)
        return RequestSpec(
            model=self.model,
            prompt=self.prompt,
            endpoint=self.endpoint,
            system_prompt=self.system_prompt,
            key=self.key,
            params=self.request_params,
            response_schema=parser.schema,
            schema_name=parser.name,
            json_output=parser.mode == "json",
            context=template_scope(context),
        )

    def answer_cache(self) -> AnswerCache | None:
        """The request cache: ``{cache_location or workspace/_cache}/{provider}``, or None when off."""
        if self.cache == CacheMode.OFF:
            return None
        root = to_path(self.cache_location) if self.cache_location else (
            to_path(self.workspace or default_workspace()) / "_cache")
        return AnswerCache(root / "v1" / self.provider, mode=self.cache, ttl_seconds=self.cache_ttl)

    def price(self) -> tuple[ModelPrice | None, str]:
        return effective_price(self.provider, self.model, self.prices)

    def prepare_manifest(self, run: BatchRun, context: Any) -> Manifest:
        """Validate and plan (or re-attach), then estimate the cost and stop here if over budget.

        Invalid input and a budget stop fail the task without retries: no retry can fix them.
        """
        try:
            manifest = run.prepare_or_load(
                rows_factory(self.rows), self.request_spec(context), max_rows_per_chunk=self.max_rows_per_chunk,
                carry=self.carry_columns,
            )
            fresh = not manifest.batch_ids
            if fresh:
                manifest.estimate = self._estimate(manifest).to_dict()
                run.store.save(manifest)
                self.log.info("Run state: %s (%d rows: %d to send in %d chunk(s), %d cached, %d repeats, %d in "
                              "flight in batches of earlier runs); estimate %s",
                              run.store.path, manifest.total_rows, sum(c.count for c in to_send(manifest)),
                              len(manifest.chunks), manifest.cached_rows, manifest.follower_rows,
                              sum(c.count for c in manifest.chunks if c.is_adopted),
                              describe_estimate(manifest.estimate))
            else:
                self.log.info("Run state: %s (%d rows): %s", run.store.path, manifest.total_rows,
                              describe_resume(manifest))
            if fresh and not self.estimate_only:
                check_budget(self._estimate(manifest), self.max_cost_usd)
        except (InvalidInputError, BudgetExceededError) as exc:
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
        return manifest

    def _estimate(self, manifest: Manifest) -> CostEstimate:
        price, _ = self.price()
        limit = next((self.request_params[k] for k in ("max_tokens", "max_completion_tokens", "max_output_tokens")
                      if isinstance(self.request_params.get(k), int)), None)
        return estimate_cost(
            price, rows=sum(c.count for c in to_send(manifest)), input_tokens=sum(c.tokens for c in to_send(manifest)),
            expected_output_tokens_per_row=0 if self.endpoint == Endpoint.EMBEDDINGS else self.expected_output_tokens,
            max_output_tokens_per_row=0 if self.endpoint == Endpoint.EMBEDDINGS else limit,
        )

    def dry_run_summary(self, manifest: Manifest) -> dict[str, Any]:
        return {"dry_run": True, "provider": self.provider, "model": self.model, "total": manifest.total_rows,
                "to_send": sum(c.count for c in to_send(manifest)), "chunks": len(manifest.chunks),
                "cached_rows": manifest.cached_rows, "repeated_rows": manifest.follower_rows,
                "estimate": manifest.estimate}


def to_send(manifest: Manifest) -> list[ChunkRecord]:
    """The first-attempt chunks this run pays for (not those waiting on another run's batch)."""
    return [c for c in manifest.chunks if c.retry_of is None and not c.is_adopted]


def describe_estimate(estimate: dict[str, Any] | None) -> str:
    if not estimate:
        return "n/a"
    if not estimate.get("price_known"):
        return "unknown (model not in the price table; pass prices= to estimate)"
    worst = estimate.get("worst_case_batch_usd")
    return (f"${estimate['batch_usd']:.4f} at batch price (real-time ${estimate['realtime_usd']:.4f})"
            + (f", worst case ${worst:.4f}" if worst is not None else ""))


def template_scope(context: Any) -> dict[str, Any]:
    """The few run values a prompt may use besides ``row``: stable across tries of one run."""
    names = ("ds", "ds_nodash", "run_id", "params")
    scope = {name: context.get(name) for name in names if context.get(name) is not None}
    ti = context.get("ti")
    if ti is not None:
        scope.update(dag_id=ti.dag_id, task_id=ti.task_id)
    return {k: (dict(v) if k == "params" else v) for k, v in scope.items()}
