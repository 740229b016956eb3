"""A connection that cannot work fails at once: one error type (BadConnectionError) naming the
connection and the field, never the key, which the operators fail without retries."""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.sdk.definitions.connection import Connection
from airflow.sdk.exceptions import AirflowFailException

from airflow_llm_batch.exceptions import BadConnectionError
from airflow_llm_batch.hooks import hook_class
from airflow_llm_batch.hooks.extras import mapping_extra, number_extra
from airflow_llm_batch.operators.failures import permanent_failure

KEY = "sk-the-secret-key-0123456789"
VERTEX = {"project": "p1", "vertex_endpoint": "http://127.0.0.1:9", "vertex_staging_uri": "gs://b/stage"}

#: (provider, host, extras that cannot work, the field the error must name)
BAD_CONNECTIONS = [
    ("openai", "http://127.0.0.1:9/v1", {"timeout": "soon"}, "timeout"),
    ("openai", "http://127.0.0.1:9/v1", {"max_retries": "many"}, "max_retries"),
    ("azure_openai", "https://x.openai.azure.com", {"max_retries": [3]}, "max_retries"),
    ("azure_openai", "https://x.openai.azure.com", {"timeout": "later"}, "timeout"),
    ("anthropic", "http://127.0.0.1:9", {"timeout": "x"}, "timeout"),
    ("anthropic", "http://127.0.0.1:9", {"anthropic_client_kwargs": "timeout=3"}, "anthropic_client_kwargs"),
    ("gemini", "http://127.0.0.1:9", {"timeout": "1m"}, "timeout"),
    ("gemini", "http://127.0.0.1:9", {"headers": ["x-a", "b"]}, "headers"),
    ("gemini", "http://127.0.0.1:9", {"inline_max_bytes": "20MB"}, "inline_max_bytes"),
    ("vertex", None, {**VERTEX, "vertex_timeout": "slow"}, "vertex_timeout"),
    ("vertex", None, {**VERTEX, "vertex_staging_uri": "s3://bucket/stage"}, "vertex_staging_uri"),
    ("vertex", None, {**VERTEX, "vertex_output_uri": "bq://p.d.table"}, "vertex_output_uri"),
]


@pytest.mark.parametrize(("provider", "host", "extra", "field"), BAD_CONNECTIONS,
                         ids=[f"{p}-{f}" for p, _, _, f in BAD_CONNECTIONS])
def test_a_bad_connection_fails_at_once_naming_the_connection_and_field(
        provider: str, host: str | None, extra: dict[str, Any], field: str) -> None:
    conn = Connection(conn_id=f"bad_{provider}", conn_type=provider, host=host, password=KEY, extra=json.dumps(extra))
    with pytest.raises(BadConnectionError) as caught:
        hook_class(provider)().backend_from_connection(conn)
    message = str(caught.value)
    assert f"bad_{provider}" in message and field in message
    assert KEY not in message and KEY not in repr(caught.value.__cause__ or "")
    failure = permanent_failure(caught.value)
    assert isinstance(failure, AirflowFailException) and "Not retried" in str(failure)


def test_an_unknown_provider_is_a_bad_connection() -> None:
    with pytest.raises(BadConnectionError, match=r"unknown provider 'nope'.*openai"):
        hook_class("nope")


def test_number_extra_reads_numbers_and_refuses_anything_else_without_echoing_it() -> None:
    assert number_extra("c", "timeout", "2.5", float) == 2.5
    assert number_extra("c", "max_retries", 4, int) == 4
    assert number_extra("c", "timeout", None, float) is None and number_extra("c", "timeout", "", float) is None
    with pytest.raises(BadConnectionError, match=r"connection 'c': extra 'timeout' must be a number, not a str") as bad:
        number_extra("c", "timeout", KEY, float)
    assert KEY not in str(bad.value) and bad.value.__cause__ is None


def test_mapping_extra_keeps_values_and_refuses_non_objects() -> None:
    assert mapping_extra("c", "headers", {"x-a": 1}) == {"x-a": 1}
    assert mapping_extra("c", "headers", None) == {}
    with pytest.raises(BadConnectionError, match=r"'headers' must be a JSON object, not a str"):
        mapping_extra("c", "headers", KEY)
