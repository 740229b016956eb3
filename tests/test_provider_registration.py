"""The package registers with Airflow's providers manager and exposes its console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
