"""AtomicWriter: readers never see half a file, locally (temporary sibling + rename) or on object storage
(one upload published at close, discarded on error; no rename, which there is a copy and a delete)."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_llm_batch.pipeline.storage import AtomicWriter, is_object_store, write_bytes_atomically


class Boom(Exception):
    pass


def test_a_local_write_goes_through_a_sibling_and_a_failed_one_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    write_bytes_atomically(target, b"first")
    with pytest.raises(Boom), AtomicWriter(target) as fh:
        fh.write(b"half")
        raise Boom
    assert target.read_bytes() == b"first" and sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]
    assert not is_object_store(target) and not is_object_store(ObjectStoragePath(f"file://{tmp_path}/x"))


def test_a_filesystem_without_discardable_uploads_keeps_the_rename(monkeypatch: pytest.MonkeyPatch) -> None:
    import fsspec
    from airflow.sdk.io import attach

    attach("memory", fs=fsspec.filesystem("memory"))
    target = ObjectStoragePath("memory://llmb-atomic/run/manifest.json")
    assert not is_object_store(target) and AtomicWriter(target).tmp != target
    write_bytes_atomically(target, b"first")
    with pytest.raises(Boom), AtomicWriter(target) as fh:
        fh.write(b"half")
        raise Boom
    assert target.read_bytes() == b"first" and [p.name for p in target.parent.iterdir()] == ["manifest.json"]


def test_an_object_storage_path_records_its_lineage_once_not_once_per_write(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ObjectStoragePath.open records an output asset on every write (per row of a results file):
    AtomicWriter records it once, then writes the file itself."""
    import airflow.sdk.lineage as lineage

    collector = lineage.HookLineageCollector()
    monkeypatch.setattr(lineage, "get_hook_lineage_collector", lambda: collector)
    target = ObjectStoragePath(f"file://{tmp_path}/results.jsonl")
    with AtomicWriter(target) as fh:
        assert type(fh).__name__ != "_TrackingFileWrapper"
        for i in range(3):
            fh.write(b'{"n":%d}\n' % i)
    assert (tmp_path / "results.jsonl").read_bytes() == b'{"n":0}\n{"n":1}\n{"n":2}\n'
    outputs = collector.collected_assets.outputs
    assert len(outputs) == 1 and outputs[0].count == 1, outputs
