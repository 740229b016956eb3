"""Run reports: an HTML page per task run (:func:`write_report`) and the list of recent runs.

Example::

    from airflow_llm_batch.report import write_report
    path = write_report("file:///opt/airflow/llm_batch_workspace/my_dag/classify/manual__2026-12-01")
    # -> .../manual__2026-12-01/report.html
"""

from __future__ import annotations

from airflow_llm_batch.pipeline.storage import StoragePath, write_bytes_atomically
from airflow_llm_batch.report.facts import RunFacts, read_facts
from airflow_llm_batch.report.page import render_page
from airflow_llm_batch.report.runs import as_path, format_runs, parse_since, recent_runs, run_folders

REPORT_NAME = "report.html"

__all__ = ["REPORT_NAME", "RunFacts", "as_path", "format_runs", "parse_since", "read_facts", "recent_runs",
           "render_page", "run_folders", "write_report"]


def write_report(run_folder: StoragePath | str, *, include_text: bool = False) -> StoragePath:
    """Write ``report.html`` into a task run folder (beside its results) and return its path.

    ``run_folder`` is the folder holding ``manifest.json`` (a path, an ObjectStoragePath or a URI).
    Failed rows' answers are shown only with ``include_text=True``; prompt text never is.
    """
    folder = as_path(run_folder) if isinstance(run_folder, str) else run_folder
    page = render_page(read_facts(folder, include_text=include_text))
    target: StoragePath = folder / REPORT_NAME
    write_bytes_atomically(target, page.encode("utf-8"))
    return target

