"""Run reports: an HTML page per task run (:func:`write_report`) and the list of recent runs.

Example::

    from airflow_llm_batch.report import write_report
    path = write_report("file:///opt/airflow/llm_batch_workspace/my_dag/classify/manual__2026-12-01")
    # -> .../manual__2026-12-01/report.html
"""

from __future__ import annotations

from pathlib import Path

from airflow_llm_batch.pipeline.storage import StoragePath, write_bytes_atomically
from airflow_llm_batch.report.facts import RunFacts, read_facts
from airflow_llm_batch.report.page import render_page
from airflow_llm_batch.report.runs import as_path, format_runs, parse_since, recent_runs, run_folders

REPORT_NAME = "report.html"

__all__ = ["REPORT_NAME", "RunFacts", "as_path", "format_runs", "parse_since", "read_facts", "recent_runs",
           "render_page", "run_folders", "storage_uri", "write_facts_report", "write_report"]


def write_report(run_folder: StoragePath | str, *, include_text: bool = False) -> StoragePath:
    """Write ``report.html`` into a task run folder (beside its results) and return its path.

    ``run_folder`` is the folder holding ``manifest.json`` (a path, an ObjectStoragePath or a URI).
    Failed rows' answers are shown only with ``include_text=True``; prompt text never is.
    """
    folder = as_path(run_folder) if isinstance(run_folder, str) else run_folder
    return write_facts_report(read_facts(folder, include_text=include_text), folder)


def write_facts_report(facts: RunFacts, folder: StoragePath) -> StoragePath:
    """Write ``report.html`` for facts already read from ``folder`` (see :func:`read_facts`)."""
    target: StoragePath = folder / REPORT_NAME
    write_bytes_atomically(target, render_page(facts).encode("utf-8"))
    return target


def storage_uri(path: StoragePath) -> str:
    """A URI for a report path: ``file:///...`` for a local path, the object storage URI otherwise."""
    return path.resolve().as_uri() if isinstance(path, Path) else str(path)

