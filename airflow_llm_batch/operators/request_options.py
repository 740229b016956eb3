"""The parameters that define the requests (shared by LLMBatchOperator and SubmitLLMBatchOperator)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, ClassVar, TypeVar

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException
from jinja2 import StrictUndefined
from jinja2.nativetypes import NativeEnvironment

from airflow_llm_batch.exceptions import BudgetExceededError, InvalidInputError
from airflow_llm_batch.operators.run_context import TaskRun
from airflow_llm_batch.operators.settings import RequestSettings, to_send
from airflow_llm_batch.pipeline.api_estimate import count_with_api
from airflow_llm_batch.pipeline.cost import check_budget
from airflow_llm_batch.pipeline.manifest import Manifest, describe_resume
from airflow_llm_batch.pipeline.parsing import ResponseFormat
from airflow_llm_batch.pipeline.render import RequestSpec
from airflow_llm_batch.pipeline.run import BatchRun
from airflow_llm_batch.sources.literal import check_json_rows
from airflow_llm_batch.sources.rows import rows_factory

T = TypeVar("T")


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


class PerRowTemplate:
    """A prompt template as a templated field: the Rendered tab shows it, but Airflow does not render it
    (rows are rendered one by one later, with ``row`` in scope). Templating calls ``resolve``."""

    def __init__(self, text: str) -> None:
        self.text = text

    def resolve(self, context: Any) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return repr(self.text)


class TemplatedParams(dict[str, Any]):
    """``request_params`` as a templated field: a value that holds ``{{ ... }}`` or ``{% ... %}`` is rendered
    to a native value (``{"temperature": "{{ params.t }}"}`` sends the number), any other value is kept
    as written. Templating calls ``resolve``."""

    def resolve(self, context: Any) -> dict[str, Any]:
        return {name: _render_native(value, context) for name, value in self.items()}


_NATIVE = NativeEnvironment(undefined=StrictUndefined)


def _render_native(value: Any, context: Any) -> Any:
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        return _NATIVE.from_string(value).render(**context)
    if isinstance(value, Mapping):
        return {k: _render_native(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_native(v, context) for v in value]
    return value


class RequestOptions(BaseOperator):
    """Base of the operators that build requests from rows.

    :param provider: "openai" (default), "azure_openai", "anthropic", "gemini" or "vertex"
    :param conn_id: Airflow connection; defaults to the provider's default (e.g. ``openai_default``)
    :param model: model name (templated)
    :param rows: list of dicts, an upstream XComArg, or a URI of a JSONL/CSV file (templated)
    :param prompt: Jinja template of the user message, rendered per row in a sandbox with ``row`` in
        scope (row values are data, never evaluated) and the task's whole Airflow template context
        (``ds``, ``logical_date``, ``data_interval_start``, ``macros``, ``params``, ``run_id``...) plus
        ``dag_id`` and ``task_id``; a name the context lacks fails the task before anything is sent.
        Airflow does not render it a second time
    :param system_prompt: Jinja template of the system message (same scope)
    :param key: column holding a unique id per row (else a stable hash of the row)
    :param response_format: None/"text", "json", a pydantic model class, or a JSON schema dict
    :param request_params: extra body parameters (temperature, max_tokens...), templated: a value
        holding ``{{ ... }}`` is rendered to a native value (``"{{ params.t }}"`` sends the number);
        names the operator sets itself (model, messages, input, custom_id... see
        pipeline/request_params.py) are refused
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
    :param estimate: how the estimate counts prompt tokens: "tokenizer" (default; offline, cl100k_base)
        or "api" (the provider's free count-tokens endpoint, each request once, on the worker before the
        budget check; Anthropic and Gemini, other providers use the tokenizer; a failed count falls back
        to the tokenizer with a warning)
    :param provider_options: this task's overrides of the connection's extras, e.g.
        ``{"vertex_staging_uri": "gs://bucket/staging", "vertex_location": "europe-west4"}`` or
        ``{"inline_max_bytes": 0}``; never secrets (refused: they would be stored with the trigger)
    :param batch_options: options of the batch create call (OpenAI and Azure OpenAI): ``metadata``
        (string pairs added to this package's tags, whose names they must not reuse) and
        ``output_expires_after`` (seconds, or ``{"anchor": "created_at", "seconds": N}``)
    """

    template_fields: Sequence[str] = ("model", "rows", "workspace", "conn_id", "request_params", "prompt",
                                      "system_prompt")
    template_fields_renderers: ClassVar[dict[str, str]] = {"prompt": "jinja", "system_prompt": "jinja",
                                                           "request_params": "json"}

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
        estimate: str = "tokenizer",
        provider_options: dict[str, Any] | None = None,
        batch_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.provider, self.conn_id, self.model = provider, conn_id, model
        self.rows = LiteralRows(rows) if isinstance(rows, (list, tuple)) else rows
        self.prompt: Any = PerRowTemplate(prompt) if isinstance(prompt, str) else prompt
        self.system_prompt: Any = PerRowTemplate(system_prompt) if isinstance(system_prompt, str) else system_prompt
        self.key = key
        self.response_format, self.request_params, self.endpoint = response_format, request_params, endpoint
        self.workspace, self.max_rows_per_chunk, self.carry_columns = workspace, max_rows_per_chunk, carry_columns
        self.cache, self.cache_ttl, self.cache_location = cache, cache_ttl, cache_location
        self.max_cost_usd, self.prices, self.expected_output_tokens = max_cost_usd, prices, expected_output_tokens
        self.provider_options, self.batch_options = provider_options, batch_options
        self.estimate_only = dry_run  # another name: BaseOperator.dry_run() is a method Airflow calls
        self.token_estimate = estimate  # another name: RequestSettings.estimate() computes the estimate
        checked = RequestSettings.of(self)  # a bad value fails when the DAG is parsed
        self.request_params = TemplatedParams(checked.request_params)
        self.provider_options = checked.provider_options

    def request_settings(self) -> RequestSettings:
        """This try's request settings, from the rendered fields (build once per try)."""
        return RequestSettings.of(self)

    def prepare_manifest(self, run: TaskRun, settings: RequestSettings, context: Any) -> Manifest:
        """Validate and plan (or re-attach), then estimate the cost and stop here if over budget.

        Invalid input and a budget stop fail the task without retries: no retry can fix them.
        """
        spec = settings.request_spec(template_scope(context))
        try:
            manifest = run.use(run.call(_prepare(rows_factory(self.rows), spec, settings)))
            if manifest.batch_ids:
                self.log.info("Run state: %s (%d rows): %s", run.store.path, manifest.total_rows,
                              describe_resume(manifest))
                return manifest
            if settings.token_estimate == "api":
                run.call(_count_with_api(manifest, settings))
            manifest.estimate = settings.estimate(manifest).to_dict()
            run.store.save(manifest)
            self._log_plan(run, manifest)
            if not settings.estimate_only:
                check_budget(settings.estimate(manifest), settings.max_cost_usd)
        except (InvalidInputError, BudgetExceededError) as exc:
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
        return manifest

    def _log_plan(self, run: TaskRun, manifest: Manifest) -> None:
        self.log.info("Run state: %s (%d rows: %d to send in %d chunk(s), %d cached, %d repeats, %d in "
                      "flight in batches of earlier runs); estimate %s",
                      run.store.path, manifest.total_rows, sum(c.count for c in to_send(manifest)),
                      len(manifest.chunks), manifest.cached_rows, manifest.follower_rows,
                      sum(c.count for c in manifest.chunks if c.is_adopted), describe_estimate(manifest.estimate))


def with_request_params_doc(cls: type[T]) -> type[T]:
    """Append RequestOptions' ``:param:`` lines to an operator's docstring (one source for the docs of
    the parameters the two request-building operators share)."""
    doc = RequestOptions.__doc__ or ""
    cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n\n    " + doc[doc.index(":param"):].rstrip() + "\n"
    return cls


def dry_run_summary(settings: RequestSettings, manifest: Manifest) -> dict[str, Any]:
    """The XCom of a ``dry_run``: what would be sent and what it should cost."""
    return {"dry_run": True, "provider": settings.provider, "model": settings.model, "total": manifest.total_rows,
            "to_send": sum(c.count for c in to_send(manifest)), "chunks": len(manifest.chunks),
            "cached_rows": manifest.cached_rows, "repeated_rows": manifest.follower_rows,
            "estimate": manifest.estimate}


def _prepare(rows: Callable[[], Iterable[Mapping[str, Any]]], spec: RequestSpec, settings: RequestSettings
             ) -> Callable[[BatchRun], Awaitable[Manifest]]:
    """Preparing reads the backend's limits and request format: it runs where the backend lives."""

    async def work(run: BatchRun) -> Manifest:
        return run.prepare_or_load(rows, spec, max_rows_per_chunk=settings.max_rows_per_chunk,
                                   carry=settings.carry_columns)

    return work


def _count_with_api(manifest: Manifest, settings: RequestSettings) -> Callable[[BatchRun], Awaitable[None]]:
    """``estimate="api"``: the chunks to send counted by the provider's count-tokens endpoint."""

    async def work(run: BatchRun) -> None:
        await count_with_api(run.backend, run.folder, to_send(manifest), settings.provider)

    return work


def describe_estimate(estimate: dict[str, Any] | None) -> str:
    if not estimate:
        return "n/a"
    if not estimate.get("price_known"):
        return "unknown (model not in the price table; pass prices= to estimate)"
    worst = estimate.get("worst_case_batch_usd")
    return (f"${estimate['batch_usd']:.4f} at batch price (real-time ${estimate['realtime_usd']:.4f})"
            + (f", worst case ${worst:.4f}" if worst is not None else ""))


def template_scope(context: Any) -> dict[str, Any]:
    """What a prompt sees besides ``row``: the task's whole Airflow template context (``ds``,
    ``logical_date``, ``data_interval_start``, ``macros``, ``params``, ``dag_run``...), plus ``dag_id``
    and ``task_id``. Rendered once per run: a resumed try re-attaches to what the first try sent."""
    scope = {str(name): value for name, value in dict(context).items()}
    ti = context.get("ti")
    if ti is not None:
        scope.setdefault("dag_id", ti.dag_id)
        scope.setdefault("task_id", ti.task_id)
    if scope.get("params") is not None:
        scope["params"] = dict(scope["params"])
    return scope
