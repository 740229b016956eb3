"""Installed beside apache-airflow-providers-openai, -anthropic and -common-ai, this package takes
nothing of theirs: no "already registered" warning, each official hook serves its own connection
type, common-ai keeps ``@task.llm_batch`` and ours is ``@task.llm_batch_job``.

The venv is built by uv on first use (see :mod:`tests.coexist.venv`) and reused afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.coexist import venv

pytestmark = pytest.mark.coexist

PROBE = Path(__file__).with_name("probe_providers.py")
OURS = "airflow-llm-batch"


@pytest.fixture(scope="module")
def coexist_python() -> Path:
    return venv.python()


def _env(home: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VIRTUAL_ENV", "PYTHON"))}
    return {**keep, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}


@pytest.fixture(scope="module")
def resolved(coexist_python: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = subprocess.run([str(coexist_python), str(PROBE)], env=_env(tmp_path_factory.mktemp("home")),
                         capture_output=True, text=True, timeout=300, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return {**result, "log": out.stdout + out.stderr}  # Airflow's log lines go to either, by configuration


def test_no_already_registered_warning(resolved: dict[str, Any]) -> None:
    assert [line for line in resolved["log"].splitlines() if "already registered" in line] == []


def test_each_official_hook_serves_its_own_connection_type(resolved: dict[str, Any]) -> None:
    hooks = resolved["hooks"]
    assert hooks["openai"] == {"class": "airflow.providers.openai.hooks.openai.OpenAIHook",
                               "package": "apache-airflow-providers-openai"}
    assert hooks["anthropic"] == {"class": "airflow.providers.anthropic.hooks.anthropic.AnthropicHook",
                                  "package": "apache-airflow-providers-anthropic"}
    assert hooks["pydanticai"]["package"] == "apache-airflow-providers-common-ai"
    assert resolved["get_hook"] == {"openai": "airflow.providers.openai.hooks.openai.OpenAIHook",
                                    "anthropic": "airflow.providers.anthropic.hooks.anthropic.AnthropicHook"}


def test_our_connection_types_and_decorator_are_our_own(resolved: dict[str, Any]) -> None:
    assert resolved["hooks"]["llm_batch_gemini"] == {"class": "airflow_llm_batch.hooks.gemini.GeminiBatchHook",
                                                     "package": OURS}
    assert resolved["hooks"]["llm_batch_azure_openai"]["package"] == OURS
    for decorators in (resolved["decorators"], resolved["decorators_core"]):
        assert decorators["llm_batch"] == "airflow.providers.common.ai.decorators.llm_batch.llm_batch_task"
        assert decorators["llm_batch_job"] == "airflow_llm_batch.decorators.llm_batch.llm_batch_job_task"


def test_airflow_providers_list_and_hooks_show_all_four_without_warnings(coexist_python: Path, tmp_path: Path) -> None:
    airflow = str(coexist_python.parent / "airflow")
    listed = subprocess.run([airflow, "providers", "list"], env=_env(tmp_path), capture_output=True, text=True,
                            timeout=300, check=True)
    for package in (OURS, "apache-airflow-providers-openai", "apache-airflow-providers-anthropic",
                    "apache-airflow-providers-common-ai"):
        assert package in listed.stdout
    hooks = subprocess.run([airflow, "providers", "hooks"], env=_env(tmp_path), capture_output=True, text=True,
                           timeout=300, check=True)
    assert "llm_batch_gemini" in hooks.stdout
    assert "already registered" not in listed.stdout + listed.stderr + hooks.stdout + hooks.stderr
