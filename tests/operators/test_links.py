"""The "Batch in console" extra link: after a real dag.test() run, the link Airflow stored for the task
is the batch's URL on the emulator the run talked to, and the same batch id through a connection to the
provider itself is the batch's page in that provider's console."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_llm_batch.operators.links import BatchConsoleLink, batch_link, console_url
from tests.airflow_helpers import get_dag, run_dag, task_states, xcom
from tests.operators.test_llm_batch_operator import write_rows


@pytest.fixture
def official_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connections as the official providers define them: no host, so the SDK talks to the provider."""
    monkeypatch.setenv("AIRFLOW_CONN_OPENAI_OFFICIAL", json.dumps({"conn_type": "openai", "password": "k"}))
    monkeypatch.setenv("AIRFLOW_CONN_ANTHROPIC_OFFICIAL", json.dumps({"conn_type": "anthropic", "password": "k"}))


@pytest.mark.parametrize(("dag_id", "task_id", "provider", "page", "emulator_page"), [
    ("llmb_operator", "batch", "openai", "https://platform.openai.com/batches/{id}", "{url}/v1/batches/{id}"),
    ("llmb_anthropic_operator", "extract", "anthropic",
     "https://console.anthropic.com/workspaces/default/batches/{id}", "{url}/v1/messages/batches/{id}"),
])
def test_the_link_of_a_finished_task_opens_its_batch_in_the_providers_console(
        dag_id: str, task_id: str, provider: str, page: str, emulator_page: str, tmp_path: Path, emulator: Any,
        airflow_db: Path, official_connections: None) -> None:
    rows = write_rows(tmp_path / "rows.jsonl", 5)
    dag_run = run_dag(dag_id, {"rows": f"file://{rows}", "destination": f"file://{tmp_path}/out.jsonl",
                               "workspace": f"file://{tmp_path}/ws"})
    assert task_states(dag_run) == {task_id: "success"}
    (batch_id,) = xcom(dag_run, task_id, "batch_ids")
    # the run talked to the emulator: the link Airflow stored at the end of the task is the batch there
    stored = xcom(dag_run, task_id, BatchConsoleLink().xcom_key)
    assert stored == emulator_page.format(url=emulator.url, id=batch_id)
    assert BatchConsoleLink() in get_dag(dag_id).get_task(task_id).operator_extra_links
    # the same batch id through a connection to the provider itself: the batch's console page
    assert batch_link(provider, f"{provider}_official", [batch_id]) == page.format(id=batch_id)


def test_vertex_links_the_batch_prediction_job_with_its_project_and_region() -> None:
    job = "projects/my-proj/locations/europe-west4/batchPredictionJobs/12345"
    assert console_url("vertex", [job]) == ("https://console.cloud.google.com/vertex-ai/locations/europe-west4/"
                                            "batch-predictions/12345?project=my-proj")
    assert console_url("vertex", [job, job]) == "https://console.cloud.google.com/vertex-ai/batch-predictions?project=my-proj"


def test_several_batches_link_the_providers_batch_list_and_azure_links_nothing() -> None:
    assert console_url("openai", ["batch_a", "batch_b"]) == "https://platform.openai.com/batches"
    assert console_url("gemini", ["batches/x"]) == "https://aistudio.google.com/batches"
    assert console_url("azure_openai", ["batch_a"]) == ""
    assert console_url("openai", []) == ""


def test_a_proxy_host_links_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_OPENAI_PROXY", json.dumps(
        {"conn_type": "openai", "password": "k", "extra": {"openai_client_kwargs": {"base_url": "https://llm.corp/v1"}}}))
    assert batch_link("openai", "openai_proxy", ["batch_a"]) == ""
