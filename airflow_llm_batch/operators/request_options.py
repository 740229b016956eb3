"""The parameters that define the requests (shared by LLMBatchOperator and SubmitLLMBatchOperator)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from airflow_llm_batch.pipeline.manifest import Manifest
from airflow_llm_batch.pipeline.parsing import OutputParser, ResponseFormat
from airflow_llm_batch.pipeline.render import RequestSpec
from airflow_llm_batch.pipeline.run import BatchRun
from airflow_llm_batch.pipeline.types import Endpoint
from airflow_llm_batch.sources.rows import rows_factory


class LiteralRows:
    """Rows given as a Python list: Airflow must not render the strings inside them as templates
    (a ticket saying ``{{ 1 + 1 }}`` stays as written). Templating calls ``resolve`` instead."""

    def __init__(self, rows: Sequence[Any]) -> None:
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
    :param request_params: extra body parameters (temperature, max_tokens...)
    :param endpoint: "chat_completions" (default), "responses" or "embeddings"
    :param workspace: object storage URI holding run state (default ``[llm_batch] workspace`` or
        ``$AIRFLOW_HOME/llm_batch_workspace``)
    :param max_rows_per_chunk: cap requests per batch below the provider's limit
    :param carry_columns: input columns copied into each result row
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
        self.workspace = workspace
        self.max_rows_per_chunk = max_rows_per_chunk
        self.carry_columns = tuple(carry_columns)
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

    def prepare_manifest(self, run: BatchRun, context: Any) -> Manifest:
        manifest = run.prepare_or_load(
            rows_factory(self.rows), self.request_spec(context), max_rows_per_chunk=self.max_rows_per_chunk,
            carry=self.carry_columns,
        )
        self.log.info("Run state: %s (%d rows, %d chunk(s), %d batch(es) already created)",
                      run.store.path, manifest.total_rows, len(manifest.chunks), len(manifest.batch_ids))
        return manifest


def template_scope(context: Any) -> dict[str, Any]:
    """The few run values a prompt may use besides ``row``: stable across tries of one run."""
    names = ("ds", "ds_nodash", "run_id", "params")
    scope = {name: context.get(name) for name in names if context.get(name) is not None}
    ti = context.get("ti")
    if ti is not None:
        scope.update(dag_id=ti.dag_id, task_id=ti.task_id)
    return {k: (dict(v) if k == "params" else v) for k, v in scope.items()}
