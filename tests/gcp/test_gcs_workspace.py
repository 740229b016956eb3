"""A gs:// workspace on the GCS emulator, through the `gcs` extra (gcsfs) without the Google provider."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_llm_batch.google.emulators import LocalGcs
from airflow_llm_batch.sources.rows import to_path
from tests.airflow_helpers import run_dag, task_states, xcom
from tests.gcp.fixtures import unique_name
from tests.operators.test_llm_batch_operator import read_jsonl, write_rows


@pytest.mark.usefixtures("emulator", "airflow_db", "gcs_connection")
def test_task_keeps_its_run_state_in_a_gs_workspace(tmp_path: Path, gcs_emulator: LocalGcs) -> None:
    bucket = gcs_emulator.client().create_bucket(unique_name("ws").replace("_", "-"))
    rows = write_rows(tmp_path / "rows.jsonl", 40)
    dag_run = run_dag("llmb_operator", {"rows": f"file://{rows}", "destination": f"file://{tmp_path}/out.jsonl",
                                        "workspace": f"gs://{bucket.name}/ws"})
    assert task_states(dag_run) == {"batch": "success"}
    assert xcom(dag_run, "batch")["succeeded"] == 40 and len(read_jsonl(tmp_path / "out.jsonl")) == 40
    (folder,) = (gcs_emulator.objects_root / bucket.name / "ws" / "llmb_operator" / "batch").iterdir()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["total_rows"] == 40 and manifest["chunks"][0]["state"] == "collected"
    assert (folder / manifest["chunks"][0]["results"]).exists()


@pytest.mark.usefixtures("gcs_connection")
def test_a_gs_object_is_written_in_place_and_a_failed_upload_is_discarded(gcs_emulator: LocalGcs) -> None:
    from airflow_llm_batch.pipeline.storage import AtomicWriter, is_object_store, write_bytes_atomically

    bucket = gcs_emulator.client().create_bucket(unique_name("atomic").replace("_", "-"))
    target = to_path(f"gs://{bucket.name}/run/manifest.json")
    assert is_object_store(target) and AtomicWriter(target).tmp == target  # no temporary object, no rename
    write_bytes_atomically(target, b"first")
    with pytest.raises(RuntimeError), AtomicWriter(target) as fh:
        fh.write(b"half")
        raise RuntimeError("the writer failed")
    assert target.read_bytes() == b"first"
    assert [b.name for b in bucket.list_blobs()] == ["run/manifest.json"]
