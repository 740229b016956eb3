"""Where a task run's state lives: one workspace folder per task run, shared by its tries, and the
tags that name the run at the provider.

Example: ``run_folder("gs://bucket/ws", context)`` ->
``gs://bucket/ws/nightly/triage/scheduled__2026-12-01T00_00_00+00_00``.
"""

from __future__ import annotations

import re
from typing import Any

from airflow.sdk import ObjectStoragePath

from airflow_llm_batch.pipeline import task_state
from airflow_llm_batch.sources.rows import to_path


def default_workspace() -> str:
    """``[llm_batch] workspace``, else ``file://$AIRFLOW_HOME/llm_batch_workspace`` (one per install)."""
    from airflow.configuration import AIRFLOW_HOME, conf

    fallback = f"file://{AIRFLOW_HOME}/llm_batch_workspace"
    return str(conf.get("llm_batch", "workspace", fallback=fallback) or fallback)


def workspace_path(workspace: str | None) -> ObjectStoragePath:
    """The workspace root: ``workspace`` or the install's default."""
    return to_path(workspace or default_workspace())


def run_folder(workspace: str | None, context: Any) -> ObjectStoragePath:
    """``{workspace}/{dag_id}/{task_id}/{run_id}[/{map_index}]``: one folder per task run, shared by
    its tries, so a retry finds what an earlier try paid for. The folder's run state is mirrored to
    the task's ``task_state_store`` (pipeline/task_state.py), so a try on another worker finds it too."""
    ti = context["ti"]
    parts = [ti.dag_id, ti.task_id, ti.run_id]
    if getattr(ti, "map_index", -1) not in (-1, None):
        parts.append(str(ti.map_index))
    folder = workspace_path(workspace)
    for part in parts:
        folder = folder / re.sub(r"[^A-Za-z0-9_.=+-]", "_", str(part))
    task_state.bind(folder, context.get("task_state_store"))
    return folder


def run_tags(context: Any) -> dict[str, str]:
    """The task run's ids, carried by each batch (metadata / display name) so a lost one can be found."""
    ti = context["ti"]
    tags = {"dag_id": ti.dag_id, "task_id": ti.task_id, "run_id": ti.run_id}
    if getattr(ti, "map_index", -1) not in (-1, None):
        tags["map_index"] = str(ti.map_index)
    return tags
