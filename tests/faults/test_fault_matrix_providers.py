"""The fault matrix across providers: a batch create that WORKED but whose answer was lost (a 5xx after
the batch was made, a dropped connection, or no answer until the client's timeout) is the path where a
blind retry pays twice. For every provider (openai, azure_openai, anthropic, gemini, vertex) a job runs
in real Airflow under that fault, and the guarded create must find the batch by its tag instead of
making a second one: one result per row by distinct key, one batch per chunk, each custom_id sent and
paid once, counted on the emulator's side.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from airflow_llm_batch.emulator import Emulator, FaultPlan
from airflow_llm_batch.emulator.vertex_api import set_vertex_storage
from airflow_llm_batch.google.emulators import LocalGcs
from tests.faults.matrix import assert_promises, run_job
from tests.faults.rows import PROVIDER_JOBS, ProviderJob
from tests.gcp.fixtures import gcs_emulator, unique_name

pytestmark = pytest.mark.usefixtures("airflow_db")
__all__ = ["gcs_emulator"]  # the session fixture, requested by the Vertex case only

#: the client timeout of every connection: how long a hung create waits before the client gives up
CLIENT_TIMEOUT_SECONDS = 5
PLANS = {
    # the first create that works answers 502 after the batch was made, the second never answers
    "lost_then_hung": FaultPlan(lost_creates=1, hung_creates=1, hang_seconds=120),
    # the first two creates that work drop the connection without an answer
    "dropped": FaultPlan(lost_creates=2, lost_create_status=0),
}
MATRIX = [pytest.param(provider, "lost_then_hung", id=f"{provider}-lost_then_hung") for provider in PROVIDER_JOBS]
MATRIX += [pytest.param(provider, "dropped", id=f"{provider}-dropped") for provider in ("openai", "gemini")]


def _connection(job: ProviderJob, emu: Emulator, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The Airflow connection of ``job``'s provider to the emulator, with a short client timeout."""
    timeout = CLIENT_TIMEOUT_SECONDS
    if job.provider == "openai":
        return {"conn_type": "openai", "password": "k", "host": emu.openai_base_url,
                "extra": {"max_retries": 12, "timeout": timeout}}
    if job.provider == "azure_openai":
        return {"conn_type": "azure_openai", "password": "k", "host": emu.url,
                "extra": {"api_version": "2024-10-21", "max_retries": 12, "timeout": timeout}}
    if job.provider == "anthropic":
        return {"conn_type": "anthropic", "password": "k", "host": emu.anthropic_base_url,
                "extra": {"timeout": timeout}}
    if job.provider == "gemini":
        return {"conn_type": "gemini", "password": "k", "host": emu.url, "extra": {"timeout": timeout}}
    gcs: LocalGcs = request.getfixturevalue("gcs_emulator")
    bucket = gcs.client().create_bucket(unique_name("faults").replace("_", "-")).name
    set_vertex_storage(emu.url, gcs_endpoint=gcs.endpoint)
    return {"conn_type": "google_cloud_platform", "extra": {
        "project": "test-project", "vertex_location": "us-central1", "vertex_endpoint": emu.url,
        "storage_endpoint": gcs.endpoint, "vertex_staging_uri": f"gs://{bucket}/faults",
        "vertex_timeout": timeout}}


@pytest.mark.parametrize(("provider", "fault"), MATRIX)
def test_a_create_whose_answer_is_lost_is_found_and_never_paid_twice(
    provider: str, fault: str, emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    job = PROVIDER_JOBS[provider]
    monkeypatch.setenv(f"AIRFLOW_CONN_{job.conn_id.upper()}", json.dumps(_connection(job, emulator, request)))
    prefix = f"fm{uuid.uuid4().hex[:6]}-"
    outcome = run_job(emulator, job.dag_id, PLANS[fault], tmp_path, stats_key=job.stats_key, count=job.rows,
                      prefix=prefix)
    assert outcome.answers_lost == 2, "the fault did not fire on two creates"
    assert_promises(outcome, job.rows, prefix)
    assert outcome.state == "success" and {r["status"] for r in outcome.results} == {"succeeded"}
    assert outcome.batches == job.chunks, "a batch was created twice"
    assert set(outcome.sent.values()) == {1} and len(outcome.sent) == job.rows, "a request was sent twice"
    assert set(outcome.paid.values()) == {1} and len(outcome.paid) == job.rows
