"""What the run-state log line says when a try finds batches already created, and how manifests written
by other versions load."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from airflow_llm_batch.pipeline.manifest import ChunkRecord, ChunkState, Manifest, ManifestStore, describe_resume
from airflow_llm_batch.pipeline.task_state import stored_manifest


def manifest(*states: str, cached_rows: int = 0, answered: bool = False) -> Manifest:
    chunks = [ChunkRecord(index=i, count=100, bytes=1, requests=f"c{i}", keys=f"k{i}", state=state,
                          batch_id=None if state == ChunkState.PREPARED else f"batch_{i}")
              for i, state in enumerate(states)]
    return Manifest(provider="openai", model="m", run_tag="t", digest="d", total_rows=100 * len(states) + cached_rows,
                    chunks=chunks, cached_rows=cached_rows, answered_results=["answered.jsonl"] if answered else [])


def test_a_finished_run_says_nothing_is_sent_and_it_lands_again() -> None:
    text = describe_resume(manifest(ChunkState.COLLECTED, ChunkState.COLLECTED, ChunkState.COLLECTED))
    assert text == ("re-attaching: 3 batch(es) already created, every row answered: nothing new to send; "
                    "landing the results again")


def test_an_unfinished_run_says_what_is_open_and_what_is_not_sent_yet() -> None:
    text = describe_resume(manifest(ChunkState.COLLECTED, ChunkState.SUBMITTED, ChunkState.PREPARED))
    assert text == "re-attaching: 2 batch(es) already created, 1 still open; 100 row(s) in 1 chunk(s) not sent yet"
    # cached rows whose answers are not stored yet: not done, even when every chunk was collected
    assert "not sent yet" in describe_resume(manifest(ChunkState.COLLECTED, cached_rows=5))
    assert "nothing new to send" in describe_resume(manifest(ChunkState.COLLECTED, cached_rows=5, answered=True))


def test_a_manifest_written_before_running_times_were_kept_still_loads() -> None:
    data = manifest(ChunkState.SUBMITTED).to_dict()
    for chunk in data["chunks"]:
        del chunk["running_at"]
    assert Manifest.from_dict(data).chunks[0].running_at is None


def test_a_manifest_written_before_rows_were_priced_at_collect_still_loads_unpriced() -> None:
    data = manifest(ChunkState.COLLECTED).to_dict()
    data["chunks"][0]["priced"] = "p-0123456789ab"
    assert Manifest.from_dict(data).chunks[0].priced == "p-0123456789ab"
    del data["chunks"][0]["priced"]
    assert Manifest.from_dict(data).chunks[0].priced is None


def test_fields_a_later_version_wrote_are_kept_and_saved_back_as_they_were(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Rolling the package back mid-run: the older reader loads a manifest with fields it does not know,
    says so, and writes them back unchanged (in the file and in the task state copy)."""
    data = manifest(ChunkState.COLLECTED).to_dict()
    data["chunks"][0]["lane"] = {"name": "fast", "weight": 2}
    data["shards"] = [1, 2]
    with caplog.at_level(logging.WARNING, logger="airflow_llm_batch.pipeline.manifest"):
        loaded = Manifest.from_dict(json.loads(json.dumps(data)))
    assert "['lane', 'shards']" in caplog.text and "written by a later version" in caplog.text
    assert loaded.chunks[0].later_fields == {"lane": {"name": "fast", "weight": 2}}
    assert loaded.later_fields == {"shards": [1, 2]}
    assert loaded.to_dict() == data and "later_fields" not in json.dumps(loaded.to_dict())
    store = ManifestStore(tmp_path)
    store.save(loaded)
    assert json.loads((tmp_path / "manifest.json").read_text()) == data
    again = store.load()
    assert again is not None and again.to_dict() == data and stored_manifest(again) == data
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="airflow_llm_batch.pipeline.manifest"):
        Manifest.from_dict(manifest(ChunkState.COLLECTED).to_dict())
    assert caplog.text == ""  # nothing unknown: nothing said
