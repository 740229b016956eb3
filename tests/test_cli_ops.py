"""`airflow-llm-batch prices | report | runs` on a real run folder and a real price file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_llm_batch.cli import main
from tests.report.run_folder import FAILING, ROWS, ReportRun, run_for_report


@pytest.fixture(scope="module")
def report_run(tmp_path_factory: pytest.TempPathFactory, emulator: Any, airflow_db: Path) -> ReportRun:
    return run_for_report(tmp_path_factory.mktemp("cli"), emulator)


def test_report_of_a_workspace_writes_its_latest_runs_page_and_prints_the_path(
        report_run: ReportRun, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(report_run.workspace)]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed.endswith(f"{report_run.folder}/report.html")
    assert (report_run.folder / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_report_of_a_folder_without_runs_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "holds no task run" in capsys.readouterr().err


def test_runs_lists_recent_runs_with_rows_cost_saving_and_failures(
        report_run: ReportRun, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "--workspace", f"file://{report_run.workspace}", "--since", "7d"]) == 0
    out = capsys.readouterr().out
    cost = report_run.summary["cost"]
    line = next(row for row in out.splitlines() if "ops_report/batch/" in row)
    assert f"{ROWS:,}" in line and f" {len(FAILING)} " in line
    assert f"{cost['batch_usd']:.4f}" in line and f"{cost['saving_usd']:.4f}" in line
    assert "1 run(s)" in out
    assert main(["runs", "--workspace", str(report_run.workspace), "--since", "bogus"]) == 2
    assert "use a number and a unit" in capsys.readouterr().err


def test_prices_shows_the_effective_table_with_dates_and_sources(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"taken_on": "2026-11-30", "providers": {
        "openai": {"gpt-4o-mini": {"input": 1.0, "output": 2.0}},
        "vertex": {"gemini-2.5-flash": {"input": 0.3, "output": 2.5}}}}))
    assert main(["prices", "--prices-file", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    mini = next(row for row in lines if row.split()[:2] == ["openai", "gpt-4o-mini"])
    assert mini.split()[2:8] == ["1", "1", "2", "0.5", "0.5", "1"] and mini.endswith(f"2026-11-30  {path}")
    gpt4o = next(row for row in lines if row.split()[:2] == ["openai", "gpt-4o"])
    assert gpt4o.endswith("bundled")
    assert any(row.split()[:2] == ["vertex", "gemini-2.5-flash"] for row in lines)
