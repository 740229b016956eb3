"""VertexBatchHook: a google_cloud_platform connection -> credentials (placeholder for emulators, the Google
provider's hook when installed, else Application Default Credentials) -> google-genai client -> backend."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.definitions.connection import Connection
from google.oauth2.credentials import Credentials

from airflow_llm_batch.backends.vertex import VertexBatchBackend
from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.hooks import hook_class
from airflow_llm_batch.hooks.vertex import VertexBatchHook, VertexOptions
from airflow_llm_batch.triggers.batch import LLMBatchTrigger

EMULATED = {"project": "p1", "vertex_endpoint": "http://127.0.0.1:9", "vertex_staging_uri": "gs://b/stage"}


def conn(conn_id: str = "gcp_test", **extra: Any) -> Connection:
    return Connection(conn_id=conn_id, conn_type="google_cloud_platform", extra=json.dumps(extra))


def test_the_registry_serves_vertex_with_this_hook() -> None:
    assert hook_class("vertex") is VertexBatchHook
    assert VertexBatchHook.conn_type == "google_cloud_platform"
    assert VertexBatchHook().conn_id == "google_cloud_default"


def test_extras_plain_or_with_the_google_providers_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:4443")
    extra: dict[str, Any] = {
        "extra__google_cloud_platform__project": "p2", "location": "europe-west4",
        "vertex_staging_uri": "bq://p2.stage", "vertex_output_uri": "gs://out/x", "vertex_api_version": "v1",
        "vertex_timeout": 30, "bigquery_endpoint": "127.0.0.1:9050"}
    options = VertexOptions.from_connection(conn(**extra))
    assert (options.project, options.location, options.staging_uri, options.output_uri) == (
        "p2", "europe-west4", "bq://p2.stage", "gs://out/x")
    assert (options.api_version, options.timeout_seconds, options.vertex_endpoint) == ("v1", 30.0, None)
    assert options.google.bigquery_endpoint == "http://127.0.0.1:9050"
    assert options.google.storage_endpoint == "http://127.0.0.1:4443"  # from the environment
    defaults = VertexOptions.from_connection(conn(project="p"))
    assert (defaults.location, defaults.api_version) == ("us-central1", "v1beta1")


def test_an_emulator_endpoint_gets_a_placeholder_token_and_no_sdk_retries() -> None:
    kwargs = VertexBatchHook.client_kwargs(VertexOptions.from_connection(conn(**EMULATED)))
    assert isinstance(kwargs["credentials"], Credentials) and kwargs["credentials"].token == "emulator"
    assert (kwargs["vertexai"], kwargs["project"], kwargs["location"]) == (True, "p1", "us-central1")
    options = kwargs["http_options"]
    assert (options.base_url, options.api_version, options.timeout) == ("http://127.0.0.1:9", "v1beta1", 120_000)
    assert options.retry_options.attempts == 1


def test_application_default_credentials_without_the_google_provider(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    if "airflow.providers.google" in sys.modules:
        pytest.skip("apache-airflow-providers-google is installed here")
    adc = tmp_path / "adc.json"
    adc.write_text(json.dumps({"type": "authorized_user", "client_id": "id", "client_secret": "s",
                               "refresh_token": "r", "quota_project_id": "adc-project"}))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "env-project")
    # storage/BigQuery emulators on plain http must not make the Vertex credentials anonymous
    options = VertexOptions.from_connection(conn(vertex_staging_uri="gs://b/s", storage_endpoint="http://127.0.0.1:1"))
    kwargs = VertexBatchHook.client_kwargs(options)
    credentials = kwargs["credentials"]
    assert isinstance(credentials, Credentials) and credentials.refresh_token == "r" and credentials.token is None
    assert kwargs["project"] == "env-project" and kwargs["http_options"].base_url is None
    assert options.google.anonymous("storage")


def test_the_google_providers_hook_supplies_credentials_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider is optional and not installed in the dev env: a stand-in module plays its role."""
    calls: list[str] = []
    supplied = Credentials(token="from-hook")  # type: ignore[no-untyped-call]

    class GoogleBaseHook:
        def __init__(self, gcp_conn_id: str) -> None:
            calls.append(gcp_conn_id)

        def get_credentials_and_project_id(self) -> tuple[Any, str]:
            return supplied, "hook-project"

    module = types.ModuleType("airflow.providers.google.common.hooks.base_google")
    module.GoogleBaseHook = GoogleBaseHook  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    kwargs = VertexBatchHook.client_kwargs(VertexOptions.from_connection(conn("gcp_hooked", vertex_staging_uri="gs://b")))
    assert calls == ["gcp_hooked"] and kwargs["credentials"] is supplied and kwargs["project"] == "hook-project"


def test_a_connection_without_staging_or_project_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidInputError, match="vertex_staging_uri"):
        VertexBatchHook().backend_from_connection(conn(project="p1", vertex_endpoint="http://127.0.0.1:9"))
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    with pytest.raises(ValueError, match="names no Google Cloud project"):
        VertexBatchHook.client_kwargs(VertexOptions.from_connection(conn(vertex_endpoint="http://127.0.0.1:9")))


async def test_the_backend_is_built_from_the_connection_and_secrets_stay_out_of_the_trigger() -> None:
    backend = VertexBatchHook().backend_from_connection(conn(**EMULATED, vertex_output_uri="bq://p1.results"))
    try:
        assert isinstance(backend, VertexBatchBackend)
        assert str(backend.staging.input) == "gs://b/stage" and str(backend.staging.output) == "bq://p1.results"
    finally:
        await backend.aclose()
    _, kwargs = LLMBatchTrigger(provider="vertex", conn_id="gcp_test", batch_ids=["projects/p1/x"]).serialize()
    assert set(kwargs) == {"provider", "conn_id", "batch_ids", "poll_interval", "timeout_at",
                           "max_consecutive_errors", "return_on_first_end", "provider_options", "run_folder",
                           "cancel_on_kill", "stuck", "switch_at"}
    assert "emulator" not in json.dumps(kwargs) and "token" not in json.dumps(kwargs)
