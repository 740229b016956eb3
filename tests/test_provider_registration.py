"""The package registers with Airflow's providers manager and exposes its console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_llm_batch.provider_info import get_provider_info


def test_provider_info_names_importable_modules() -> None:
    import importlib

    info = get_provider_info()
    assert info["package-name"] == "airflow-llm-batch"
    for section in ("operators", "sensors", "triggers", "hooks"):
        for entry in info[section]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    for conn in info["connection-types"]:
        module, _, name = conn["hook-class-name"].rpartition(".")
        hook = getattr(importlib.import_module(module), name)
        assert hook.conn_type == conn["connection-type"]


def test_airflow_providers_list_shows_the_package(tmp_path: Path) -> None:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    airflow = Path(sys.executable).parent / "airflow"
    out = subprocess.run([str(airflow), "providers", "list"], env=env, capture_output=True, text=True,
                         timeout=180, check=True).stdout
    assert "airflow-llm-batch" in out


def test_console_script_starts_the_emulator_help() -> None:
    script = Path(sys.executable).parent / "airflow-llm-batch"
    out = subprocess.run([str(script), "emulator", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--port" in out.stdout


def test_airflow_config_lists_the_llm_batch_section_under_this_airflow_home(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__LLM_BATCH__WORKSPACE"}
    env["AIRFLOW_HOME"] = str(tmp_path)
    airflow = Path(sys.executable).parent / "airflow"
    out = subprocess.run([str(airflow), "config", "list", "--section", "llm_batch", "--show-values"], env=env,
                         capture_output=True, text=True, timeout=180, check=True).stdout
    assert "[llm_batch]" in out
    assert f"workspace = file://{tmp_path}/llm_batch_workspace" in out


def test_default_workspace_is_under_the_running_airflow_home(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.configuration import AIRFLOW_HOME

    from airflow_llm_batch.operators.run_context import default_workspace

    monkeypatch.delenv("AIRFLOW__LLM_BATCH__WORKSPACE", raising=False)
    assert AIRFLOW_HOME == os.environ["AIRFLOW_HOME"]  # the test suite's own home, not ~/airflow
    assert default_workspace() == f"file://{AIRFLOW_HOME}/llm_batch_workspace"
    monkeypatch.setenv("AIRFLOW__LLM_BATCH__WORKSPACE", "gs://bucket/ws")
    assert default_workspace() == "gs://bucket/ws"


def test_only_our_own_namespaced_connection_types_and_decorator_are_registered() -> None:
    """openai / anthropic / google_cloud_platform and @task.llm_batch belong to official providers."""
    info = get_provider_info()
    assert {c["connection-type"] for c in info["connection-types"]} == {"llm_batch_azure_openai",
                                                                        "llm_batch_gemini"}
    assert [d["name"] for d in info["task-decorators"]] == ["llm_batch_job"]


def test_the_renamed_decorator_keeps_its_old_import_path() -> None:
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    from airflow_llm_batch.decorators.llm_batch import llm_batch_job_task, llm_batch_task

    assert llm_batch_task is llm_batch_job_task
    assert ProvidersManagerTaskRuntime().taskflow_decorators["llm_batch_job"] is llm_batch_job_task


def test_the_connection_forms_are_served_from_the_declared_metadata() -> None:
    """What the UI's connection form reads (the UI API's hook metadata), without importing our hooks."""
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    forms = {meta.connection_type: meta for meta in HookMetaService.hook_meta_data()}
    for conn_type, host_label, extras in [
        ("llm_batch_gemini", "Base URL", {"api_version", "timeout", "inline_max_bytes"}),
        ("llm_batch_azure_openai", "Azure OpenAI Endpoint", {"api_version", "timeout", "max_retries"}),
    ]:
        form = forms[conn_type]
        assert form.hook_name and "airflow-llm-batch" in form.hook_name
        fields = form.standard_fields
        assert fields is not None and fields.password is not None and fields.host is not None
        assert fields.password.title == "API Key" and fields.host.title == host_label
        assert fields.login is not None and fields.login.hidden and fields.host.placeholder
        assert set(form.extra_fields or {}) == extras
    api_version = (forms["llm_batch_azure_openai"].extra_fields or {})["api_version"]
    assert api_version["value"] == "2024-10-21" and api_version["schema"]["title"] == "API Version"


def _pyproject() -> dict[str, Any]:
    import tomllib

    return tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())


def test_the_emulator_server_is_an_extra_not_a_core_dependency() -> None:
    project = _pyproject()["project"]
    assert not [dep for dep in project["dependencies"] if dep.startswith("aiohttp")]
    extras = project["optional-dependencies"]
    for extra in ("emulator", "gemini", "google"):  # the emulator's server; google-genai's async transport
        assert any(dep.startswith("aiohttp") for dep in extras[extra]), extra


_WITHOUT_AIOHTTP = """
import sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "aiohttp" or name.startswith("aiohttp."):
            raise ImportError(f"{name} is not installed (blocked by the test)")

sys.meta_path.insert(0, Block())
import airflow_llm_batch.decorators.llm_batch, airflow_llm_batch.operators, airflow_llm_batch.sensors.batch
import airflow_llm_batch.triggers.batch, airflow_llm_batch.hooks.openai, airflow_llm_batch.hooks.azure_openai
from airflow_llm_batch.hooks import hook_class
hook_class("openai")("core").backend_from_connection  # the OpenAI path builds without aiohttp
print(sorted(m for m in sys.modules if m.startswith(("aiohttp", "airflow_llm_batch.emulator"))))
"""


def test_the_core_install_imports_the_airflow_faces_without_aiohttp_or_the_emulator(tmp_path: Path) -> None:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", _WITHOUT_AIOHTTP], env=env, capture_output=True, text=True,
                         timeout=300, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_package_metadata_for_pypi_and_airflow_providers() -> None:
    project = _pyproject()["project"]
    assert "Development Status :: 4 - Beta" in project["classifiers"]
    assert {"Programming Language :: Python :: 3.10", "Programming Language :: Python :: 3.11"} <= set(
        project["classifiers"])
    assert {"Documentation", "Changelog", "Issues"} <= set(project["urls"])
    assert get_provider_info()["documentation-url"] == project["urls"]["Documentation"]
