"""The coexistence venv: apache-airflow (the version of uv.lock) with the official OpenAI, Anthropic and
Common AI providers and this package (editable, so it always runs the checkout's code), built by uv into
``.venv-coexist`` at the repository root and reused while its inputs are unchanged."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv-coexist"
#: the official providers, pinned so a new release cannot change the test under our feet
OFFICIAL = ("apache-airflow-providers-openai==2.2.0", "apache-airflow-providers-anthropic==1.2.0",
            "apache-airflow-providers-common-ai==1.0.0")
#: this checkout, editable, with the extra its Gemini hook needs (so every hook of ours imports)
PACKAGE = f"{REPO}[gemini]"
_STAMP = VENV / "llm-batch-inputs.json"
_BUILD_SECONDS = 600


def locked_version(name: str) -> str:
    """The version of ``name`` pinned in uv.lock."""
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    for package in lock["package"]:
        if package["name"] == name:
            return str(package["version"])
    raise LookupError(f"{name} is not in uv.lock")


def find_uv() -> str:
    """uv from $UV, the PATH, or the Makefile's bootstrap copy (``make test`` makes sure one exists)."""
    for candidate in (os.environ.get("UV"), shutil.which("uv"), str(REPO / ".uv-bootstrap" / "bin" / "uv")):
        if candidate and Path(candidate).exists():
            return candidate
    raise FileNotFoundError("uv not found: set UV=/path/to/uv or run `make install` (it bootstraps uv)")


def requirements() -> list[str]:
    return [f"apache-airflow=={locked_version('apache-airflow')}", *OFFICIAL]


def _inputs() -> dict[str, str]:
    pyproject = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()
    return {"requirements": " ".join(requirements()), "pyproject": pyproject, "package": PACKAGE,
            "python": f"{sys.version_info.major}.{sys.version_info.minor}"}


def python() -> Path:
    """The venv's interpreter, building or rebuilding the venv first when its inputs changed."""
    inputs = _inputs()
    if _STAMP.exists() and json.loads(_STAMP.read_text()) == inputs:
        return VENV / "bin" / "python"
    uv = find_uv()
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(VENV)], check=True,
                   timeout=_BUILD_SECONDS)
    subprocess.run([uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", str(VENV / "bin" / "python"),
                    *requirements(), "--editable", PACKAGE], check=True, timeout=_BUILD_SECONDS)
    _STAMP.write_text(json.dumps(inputs))
    return VENV / "bin" / "python"
