"""Credentials, project and endpoint resolution for the Google clients."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from typing import Any

import pytest

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.google import bigquery_client, google_settings, storage_client


def set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, **extra: Any) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}",
                       json.dumps({"conn_type": "google_cloud_platform", "extra": extra}))


def test_emulator_variables_give_anonymous_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", raising=False)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:9023")
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", "http://127.0.0.1:9050/")
    settings = google_settings()
    assert not settings.has_connection and settings.conn_id == "google_cloud_default"
    assert settings.storage_endpoint == "http://127.0.0.1:9023"
    assert settings.bigquery_endpoint == "http://127.0.0.1:9050"
    assert settings.anonymous("bigquery") and settings.anonymous("storage")
    client = bigquery_client(settings, project="p1")
    assert client.project == "p1" and "127.0.0.1:9050" in client._connection.API_BASE_URL
    assert type(client._credentials).__name__ == "AnonymousCredentials"
    assert "127.0.0.1:9023" in storage_client(settings)._connection.API_BASE_URL
    with pytest.raises(InvalidInputError, match="no Google Cloud project for BigQuery"):
        bigquery_client(settings)


def test_connection_extras_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", "127.0.0.1:1")
    set_conn(monkeypatch, "gcp_x", project="from-conn", bigquery_endpoint="http://127.0.0.1:2",
             storage_endpoint="https://storage.example.test")
    settings = google_settings("gcp_x")
    assert (settings.project, settings.bigquery_endpoint) == ("from-conn", "http://127.0.0.1:2")
    assert settings.anonymous("bigquery") and not settings.anonymous("storage")
    assert "from-conn" in settings.describe("bigquery") and "anonymous" in settings.describe("bigquery")


def test_a_named_connection_must_exist() -> None:
    with pytest.raises(InvalidInputError, match="connection 'no_such_gcp' does not exist"):
        google_settings("no_such_gcp")


def test_key_material_without_the_google_provider_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("google.auth")
    if "airflow.providers.google" in sys.modules:
        pytest.skip("apache-airflow-providers-google is installed here")
    # keyfile_dict and key_path are read without the provider (tests/hooks/test_google_connection_fields.py);
    # a key kept in Secret Manager is not, and is refused rather than replaced by another identity
    set_conn(monkeypatch, "gcp_keyed", project="p", key_secret_name="projects/p/secrets/k")
    with pytest.raises(InvalidInputError, match=r"'key_secret_name'.*needs apache-airflow-providers-google"):
        google_settings("gcp_keyed").credentials("bigquery")
    set_conn(monkeypatch, "gcp_keyed", project="p", keyfile_dict='{"type": "service_account"}')
    with pytest.raises(InvalidInputError, match="'keyfile_dict' is not a complete service-account key"):
        google_settings("gcp_keyed").credentials("bigquery")


def test_the_google_providers_hook_supplies_credentials_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider is optional and not installed in the dev env: a stand-in module plays its role."""
    from google.auth.credentials import AnonymousCredentials

    calls: list[str] = []

    class GoogleBaseHook:
        def __init__(self, gcp_conn_id: str) -> None:
            calls.append(gcp_conn_id)

        def get_credentials_and_project_id(self) -> tuple[Any, str]:
            return AnonymousCredentials(), "hook-project"

    module = types.ModuleType("airflow.providers.google.common.hooks.base_google")
    module.GoogleBaseHook = GoogleBaseHook  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    set_conn(monkeypatch, "gcp_hooked")
    client = bigquery_client(google_settings("gcp_hooked"))
    assert calls == ["gcp_hooked"] and client.project == "hook-project"


def test_importing_the_package_loads_no_google_library() -> None:
    code = ("import sys, airflow_llm_batch.google, airflow_llm_batch.sinks.bigquery, "
            "airflow_llm_batch.sinks.object_storage, airflow_llm_batch.sources.bigquery; "
            "bad = sorted(m for m in sys.modules if m.startswith(('google.cloud.', 'airflow.providers.google', "
            "'pyarrow'))); print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
