"""A task's settings as frozen objects, built once from the operator's rendered fields and checked there.

The operators keep one attribute per constructor parameter (Airflow renders the templated ones on
the instance); each try builds these objects from them once and reads only the objects afterwards.
The constructors build them too, so a bad value fails when the DAG is parsed, naming the task and
the setting.

Example: ``settings = RequestSettings.of(op)`` then ``settings.request_spec(context)``,
``settings.answer_cache()``, ``settings.estimate(manifest)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.configuration import conf

from airflow_llm_batch.hooks.options import check_options
from airflow_llm_batch.operators.batch_options import check_batch_options
from airflow_llm_batch.operators.effective_prices import effective_price
from airflow_llm_batch.operators.paths import workspace_path
from airflow_llm_batch.operators.settings_checks import (
    check_carry_columns,
    check_count,
    check_estimate_method,
    check_margin,
    check_seconds,
    check_settings,
)
from airflow_llm_batch.pipeline.cache import AnswerCache, CacheMode
from airflow_llm_batch.pipeline.cost import CostEstimate, estimate_cost
from airflow_llm_batch.pipeline.manifest import ChunkRecord, Manifest
from airflow_llm_batch.pipeline.parsing import OutputParser, ResponseFormat
from airflow_llm_batch.pipeline.policy import OPTIONAL_RETRY_CODES, RETRYABLE_CODES, Admission, RetryPolicy
from airflow_llm_batch.pipeline.prices import ModelPrice
from airflow_llm_batch.pipeline.render import RequestSpec
from airflow_llm_batch.pipeline.request_params import check_request_params
from airflow_llm_batch.pipeline.types import Endpoint
from airflow_llm_batch.realtime.deadline import (
    DEFAULT_MARGIN,
    TYPICAL_LATENCY_SECONDS,
    Deadline,
    deadline_at,
    realtime_rate,
)
from airflow_llm_batch.realtime.decision import AutoRule, Mode
from airflow_llm_batch.realtime.runner import RunnerSettings
from airflow_llm_batch.sources.rows import to_path

#: request parameters that cap an answer's size, by provider vocabulary (for the worst-case estimate)
OUTPUT_LIMIT_PARAMS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


def _raw(cls: type, op: Any) -> dict[str, Any]:
    return {f.name: getattr(op, f.name) for f in fields(cls)}


@dataclass(frozen=True)
class RequestSettings:
    """What the requests are and what they may cost (RequestOptions' parameters, rendered)."""

    task_id: str
    provider: str
    conn_id: str | None
    model: str
    prompt: str
    system_prompt: str | None
    key: str | None
    response_format: ResponseFormat
    request_params: Mapping[str, Any]
    endpoint: Endpoint
    workspace: str | None
    max_rows_per_chunk: int | None
    carry_columns: tuple[str, ...]
    cache: CacheMode
    cache_ttl: float | None
    cache_location: str | None
    max_cost_usd: float | None
    prices: dict[str, dict[str, dict[str, float]]] | None
    expected_output_tokens: int
    estimate_only: bool
    #: "tokenizer" or "api": how the estimate's prompt tokens are counted (the operator's ``estimate``)
    token_estimate: str
    provider_options: dict[str, Any]
    batch_options: dict[str, Any]

    @classmethod
    def of(cls, op: Any) -> RequestSettings:
        """Read the operator's (rendered) fields; normalise and check them (ValueError names the task)."""
        raw = _raw(cls, op)
        endpoint = Endpoint.parse(raw["endpoint"])
        params = dict(raw["request_params"] or {})
        check_request_params(raw["provider"], endpoint, params)
        check_count(raw["task_id"], "max_rows_per_chunk", raw["max_rows_per_chunk"], optional=True)
        check_estimate_method(raw["task_id"], raw["token_estimate"])
        OutputParser(raw["response_format"])  # a bad response_format fails here
        ttl = raw["cache_ttl"]
        batch_options = check_batch_options(raw["task_id"], raw["provider"], raw["batch_options"])
        options = {**(raw["provider_options"] or {}), **({"batch_options": batch_options} if batch_options else {})}
        system_prompt = None if raw["system_prompt"] is None else str(raw["system_prompt"])
        carry = check_carry_columns(raw["task_id"], raw["carry_columns"])
        return cls(**{**raw, "endpoint": endpoint, "request_params": params, "prompt": str(raw["prompt"]),
                      "system_prompt": system_prompt, "carry_columns": carry, "cache": CacheMode.parse(raw["cache"]),
                      "cache_ttl": ttl.total_seconds() if isinstance(ttl, timedelta) else ttl,
                      "provider_options": check_options(options), "batch_options": batch_options})

    @property
    def parser(self) -> OutputParser:
        return OutputParser(self.response_format)

    def request_spec(self, scope: dict[str, Any]) -> RequestSpec:
        """The request of every row; ``scope`` holds the run values a prompt may use besides ``row``."""
        parser = self.parser
        return RequestSpec(model=self.model, prompt=self.prompt, endpoint=self.endpoint,
                           system_prompt=self.system_prompt, key=self.key, params=dict(self.request_params),
                           response_schema=parser.schema, schema_name=parser.name,
                           json_output=parser.mode == "json", context=scope)

    def answer_cache(self) -> AnswerCache | None:
        """The request cache: ``{cache_location or workspace/_cache}/{provider}``, or None when off."""
        if self.cache == CacheMode.OFF:
            return None
        root = to_path(self.cache_location) if self.cache_location else workspace_path(self.workspace) / "_cache"
        return AnswerCache(root / "v1" / self.provider, mode=self.cache, ttl_seconds=self.cache_ttl)

    def price(self) -> tuple[ModelPrice | None, str]:
        return effective_price(self.provider, self.model, self.prices)

    def estimate(self, manifest: Manifest) -> CostEstimate:
        """What the rows this run sends should cost, and at worst may cost."""
        return self.estimate_of(to_send(manifest))

    def estimate_of(self, chunks: Sequence[ChunkRecord]) -> CostEstimate:
        """What sending the rows of ``chunks`` should cost (from their prompt token counts)."""
        price, _ = self.price()
        limit = next((self.request_params[k] for k in OUTPUT_LIMIT_PARAMS
                      if isinstance(self.request_params.get(k), int)), None)
        embeddings = self.endpoint == Endpoint.EMBEDDINGS
        sent = chunks
        return estimate_cost(price, rows=sum(c.count for c in sent), input_tokens=sum(c.tokens for c in sent),
                             expected_output_tokens_per_row=0 if embeddings else self.expected_output_tokens,
                             max_output_tokens_per_row=0 if embeddings else limit)


@dataclass(frozen=True)
class WaitSettings:
    """How LLMBatchOperator waits, retries and lands (its own parameters, rendered)."""

    task_id: str
    destination: Any
    deferrable: bool
    poll_interval: float
    wait_timeout: timedelta | float | None
    cancel_on_timeout: bool
    cancel_on_kill: bool
    max_attempts: int
    retry_on: tuple[str, ...]
    enqueued_token_budget: int | None
    max_open_batches: int | None
    min_success_rate: float | None
    xcom_max_rows: int

    @classmethod
    def of(cls, op: Any) -> WaitSettings:
        raw = _raw(cls, op)
        check_settings(raw["task_id"], poll_interval=raw["poll_interval"], timeout=raw["wait_timeout"],
                       min_success_rate=raw["min_success_rate"], max_attempts=raw["max_attempts"])
        retry_on = tuple(raw["retry_on"])
        unknown = set(retry_on) - OPTIONAL_RETRY_CODES - RETRYABLE_CODES
        if unknown:
            raise ValueError(f"retry_on: unknown codes {sorted(unknown)}; choose from {sorted(OPTIONAL_RETRY_CODES)}")
        return cls(**{**raw, "retry_on": retry_on})

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.max_attempts, retry_codes=RETRYABLE_CODES | frozenset(self.retry_on))

    @property
    def admission(self) -> Admission:
        return Admission(token_budget=self.enqueued_token_budget, max_open_batches=self.max_open_batches)


@dataclass(frozen=True)
class RealtimeSettings:
    """Batch or real-time, and how real-time sends (LLMBatchOperator's own parameters, rendered).

    Built at parse time too (``templated=True`` skips the values still holding ``{{ ... }}``)."""

    task_id: str
    mode: Mode
    max_concurrency: int
    requests_per_minute: int | None
    tokens_per_minute: int | None
    deadline: Deadline | None
    expected_batch_turnaround: timedelta
    #: time kept in hand after real-time's estimate when planning a deadline (``deadline_margin``)
    deadline_margin: timedelta = DEFAULT_MARGIN
    #: seconds one real-time answer is assumed to take (``realtime_latency_estimate``)
    realtime_latency_estimate: float = TYPICAL_LATENCY_SECONDS

    @classmethod
    def of(cls, op: Any, *, templated: bool = False) -> RealtimeSettings:
        task_id, mode, deadline = op.task_id, op.mode, op.deadline
        if templated and isinstance(mode, str) and "{{" in mode:
            mode = Mode.BATCH  # rendered and checked again when the task runs
        try:
            parsed = Mode.parse(mode)
            if not (templated and isinstance(deadline, str) and "{{" in deadline):
                deadline_at(deadline, datetime.now(timezone.utc))  # a bad deadline fails here
        except ValueError as exc:
            raise ValueError(f"task {task_id!r}: {exc}") from None
        check_count(task_id, "max_concurrency", op.max_concurrency)
        for name in ("requests_per_minute", "tokens_per_minute"):
            check_count(task_id, name, getattr(op, name), optional=True)
        turnaround = op.expected_batch_turnaround
        if not isinstance(turnaround, timedelta) or turnaround.total_seconds() <= 0:
            raise ValueError(f"task {task_id!r}: expected_batch_turnaround={turnaround!r} must be a timedelta > 0")
        check_seconds(task_id, "realtime_latency_estimate", op.realtime_latency_estimate)
        return cls(task_id, parsed, op.max_concurrency, op.requests_per_minute, op.tokens_per_minute,
                   deadline or None, turnaround, check_margin(task_id, op.deadline_margin),
                   float(op.realtime_latency_estimate))

    @property
    def rows_per_second(self) -> float:
        """The real-time rate a deadline is planned with (``max_concurrency / realtime_latency_estimate``,
        capped by ``requests_per_minute``)."""
        return realtime_rate(self.max_concurrency, self.requests_per_minute, self.realtime_latency_estimate)

    @property
    def rule(self) -> AutoRule:
        return AutoRule(expected_batch_turnaround=self.expected_batch_turnaround,
                        realtime_rows_per_second=self.rows_per_second)

    def runner_settings(self, policy: RetryPolicy) -> RunnerSettings:
        return RunnerSettings(max_concurrency=self.max_concurrency, requests_per_minute=self.requests_per_minute,
                              tokens_per_minute=self.tokens_per_minute, policy=policy)

    def seconds_to_deadline(self, run_start: datetime, now: datetime) -> float | None:
        at = deadline_at(self.deadline, run_start)
        return None if at is None else (at - now).total_seconds()


def to_send(manifest: Manifest) -> list[ChunkRecord]:
    """The first-attempt chunks this run pays for (not those waiting on another run's batch)."""
    return [c for c in manifest.chunks if c.retry_of is None and not c.is_adopted]


def default_deferrable() -> bool:
    """``deferrable``'s default: True, or ``[operators] default_deferrable`` when the deployment sets it
    in its environment (``AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE``).

    The airflow.cfg entry is not read: ``airflow config`` / ``airflow standalone`` write every default
    into the file, so its ``False`` there is Airflow's built-in default, not a choice, and a batch wait
    held on a worker keeps a slot for the hours a batch takes."""
    if any(name.startswith("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE") for name in os.environ):
        return conf.getboolean("operators", "default_deferrable", fallback=True)
    return True
