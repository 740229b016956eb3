"""The run report of a real run on the emulator: valid self-contained HTML, one timeline row per batch,
rows by error code, cost against real-time, failed rows with reasons and no prompt text by default."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from airflow_llm_batch.report import write_report
from airflow_llm_batch.report.facts import BatchBar
from airflow_llm_batch.report.timeline import timeline_svg
from tests.report.run_folder import FAILING, PROMPT_WORD, ROWS, ReportRun, run_for_report

VOID = {"meta", "br", "img", "hr", "input", "link", "rect"}


class Checker(HTMLParser):
    """Checks every element is closed in order, and collects what the page would fetch."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.batches = 0
        self.external: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "g" and values.get("class") == "batch":
            self.batches += 1
        self.external += [v for k, v in attrs if k in ("src", "href") and v]
        if tag in ("script", "link", "img", "iframe"):
            self.problems.append(tag)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.external += [v for k, v in attrs if k in ("src", "href") and v]

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack.pop() != tag:
            self.problems.append(f"</{tag}> out of order")


@pytest.fixture(scope="module")
def report_run(tmp_path_factory: pytest.TempPathFactory, emulator: Any, airflow_db: Path) -> ReportRun:
    return run_for_report(tmp_path_factory.mktemp("report"), emulator)


def test_report_is_valid_self_contained_html_with_one_timeline_row_per_batch(report_run: ReportRun) -> None:
    path = write_report(str(report_run.folder))
    assert Path(path.path) == report_run.folder / "report.html"
    html = (report_run.folder / "report.html").read_text()
    checker = Checker()
    checker.feed(html)
    checker.close()
    assert html.startswith("<!DOCTYPE html>") and not checker.stack and not checker.problems
    assert checker.external == []  # nothing fetched at view time
    assert report_run.batches_created == len(report_run.summary["batch_ids"]) == 3
    assert checker.batches == report_run.batches_created
    for batch_id in report_run.summary["batch_ids"]:
        assert f'data-batch-id="{batch_id}"' in html


def test_report_shows_rows_by_error_code_cost_saving_and_failed_rows_without_prompt_text(
        report_run: ReportRun) -> None:
    write_report(report_run.folder)  # type: ignore[arg-type]
    html = (report_run.folder / "report.html").read_text()
    assert PROMPT_WORD not in html
    assert f'<td>invalid_prompt</td><td class="n">{len(FAILING)}</td>' in html
    assert f'<td>rows</td><td class="n">{ROWS}</td>' in html
    cost = report_run.summary["cost"]
    assert f'{cost["batch_usd"]:,.4f}' in html and f'{cost["saving_usd"]:,.4f}' in html
    for i in FAILING:
        assert f"<td>r{i:03d}</td><td>invalid_prompt</td>" in html
    assert "Slowest batches" in html


def test_timeline_draws_requeued_and_retried_batches() -> None:
    bars = [BatchBar("batch_old", 0, 1, 10, "requeued", None, None, None, requeued=True),
            BatchBar("batch_new", 0, 1, 10, "completed", 100.0, 101.0, 160.0, running_at=110.0),
            BatchBar("batch_retry", 2, 2, 3, "failed", 161.0, 162.0, 170.0, retry_of=0)]
    svg = timeline_svg(bars)
    assert svg.count('<g class="batch"') == 3
    assert "requeued (replaced by a later batch" in svg
    assert 'class="phase validating"' in svg and 'class="phase running"' in svg and 'class="phase open"' in svg
    assert "chunk 2 (retry of chunk 0)" in svg and "70.0 s" in svg


def test_failed_samples_read_only_the_results_files_that_hold_failed_rows(report_run: ReportRun,
                                                                             tmp_path: Path) -> None:
    """A results file whose counts say every row succeeded is not read (it cannot hold a sample)."""
    import shutil

    from airflow_llm_batch.pipeline.manifest import ManifestStore
    from airflow_llm_batch.report.facts import failed_samples

    folder = tmp_path / "copy"
    shutil.copytree(report_run.folder, folder)
    manifest = ManifestStore(folder).load()  # type: ignore[arg-type]
    assert manifest is not None
    expected = failed_samples(folder, manifest)  # type: ignore[arg-type]
    clean = [c.results for c in manifest.chunks if c.results and c.counts and not c.counts.get("failed")]
    assert clean, "the run has a chunk where every row succeeded"
    for name in clean:
        (folder / name).write_text("not JSON: this file must not be read\n")
    assert failed_samples(folder, manifest) == expected  # type: ignore[arg-type]
    assert sorted(s.key for s in expected) == sorted(f"r{i:03d}" for i in FAILING)
