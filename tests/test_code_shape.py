"""The package keeps the shape the team agreed on: no module over 400 lines, no function over 50.

ruff's complexity gate (C901, max 10) lives in pyproject.toml; these two limits have no ruff rule, so a
test holds them. A failure names the file and function to split.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "airflow_llm_batch"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 50


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_package_has_modules_to_check() -> None:
    assert len(_modules()) > 50


def test_no_module_is_over_400_lines() -> None:
    too_long = {str(p.relative_to(PACKAGE)): n for p in _modules()
                if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert too_long == {}, f"split these modules (lines): {too_long}"


def test_no_function_is_over_50_lines() -> None:
    too_long: dict[str, int] = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long[f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}"] = lines
    assert too_long == {}, f"split these functions (lines): {too_long}"
