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
