"""`airflow-llm-batch clean --older-than AGE`: old run folders and cache entries go, young ones and
folders with open batches stay, a dry run deletes nothing; on a local path and through ObjectStoragePath."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_llm_batch.cli import main
from airflow_llm_batch.pipeline.manifest import ChunkRecord, ChunkState, Manifest, ManifestStore
from airflow_llm_batch.retention import clean_workspace, parse_age

DAY = 86400.0
FP_OLD, FP_NEW = "ab" + "0" * 62, "cd" + "1" * 62


def _run(workspace: Path, name: str, *, age_days: float, chunk_state: str = ChunkState.COLLECTED) -> Path:
    folder = workspace / "dag" / "task" / name
    chunk = ChunkRecord(index=0, count=2, bytes=10, requests="chunks/0.jsonl", keys="chunks/0.keys",
                        state=chunk_state, batch_id="batch_1")
    ManifestStore(folder).save(Manifest(provider="openai", model="m", run_tag=name, digest="d", total_rows=2,
                                        chunks=[chunk]))
    (folder / "chunks").mkdir(parents=True, exist_ok=True)
    (folder / "chunks" / "0.jsonl").write_text('{"prompt": "personal data"}\n')
    _age(folder, age_days)
    return folder


def _cache_entry(workspace: Path, fp: str, *, age_days: float) -> Path:
    path = workspace / "_cache" / "v1" / "openai" / fp[:2] / f"{fp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"text": "an answer"}')
    _age(path, age_days)
    return path


def _age(path: Path, days: float) -> None:
    stamp = time.time() - days * DAY
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p, (stamp, stamp))


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    _run(ws, "old", age_days=40)
    _run(ws, "new", age_days=1)
    _run(ws, "old_open", age_days=40, chunk_state=ChunkState.SUBMITTED)
    _cache_entry(ws, FP_OLD, age_days=40)
    _cache_entry(ws, FP_NEW, age_days=1)
    return ws


def _left(ws: Path) -> set[str]:
    return {p.relative_to(ws).as_posix() for p in ws.rglob("*") if p.is_file()}


def test_clean_deletes_old_runs_and_cache_entries_and_keeps_new_and_open_ones(
        workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["clean", "--older-than", "30d", "--workspace", str(workspace)]) == 0
    left = _left(workspace)
    assert not (workspace / "dag" / "task" / "old").exists()
    assert "dag/task/new/manifest.json" in left and "dag/task/old_open/manifest.json" in left
    assert f"_cache/v1/openai/cd/{FP_NEW}.json" in left and f"_cache/v1/openai/ab/{FP_OLD}.json" not in left
    out = capsys.readouterr().out
    assert "deleted: 1 run folder(s)" in out and "1 cache entry" in out
    assert "kept " in out and "old_open: 1 open batch(es)" in out
    assert "personal data" not in out and "an answer" not in out


def test_force_deletes_an_old_folder_with_open_batches(workspace: Path) -> None:
    assert main(["clean", "--older-than", "30d", "--workspace", str(workspace), "--force"]) == 0
    assert not (workspace / "dag" / "task" / "old_open").exists()
    assert (workspace / "dag" / "task" / "new" / "manifest.json").exists()


def test_dry_run_lists_counts_and_bytes_and_deletes_nothing(
        workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _left(workspace)
    old = workspace / "dag" / "task" / "old"
    size = sum(p.stat().st_size for p in old.rglob("*") if p.is_file())
    assert main(["clean", "--older-than", "30d", "--workspace", str(workspace), "--dry-run"]) == 0
    assert _left(workspace) == before
    out = capsys.readouterr().out
    assert f"would delete file://{old}: 2 file(s), {size:,} bytes" in out
    assert "would delete: 1 run folder(s)" in out and "1 cache entry" in out
    assert "personal data" not in out


def test_object_storage_path_workspace_is_cleaned_through_object_storage_path(workspace: Path) -> None:
    report = clean_workspace(ObjectStoragePath(f"file://{workspace}"), older_than="30d")
    assert [Path(f.folder).name for f in report.deleted] == ["old"]
    assert [Path(f.folder).name for f in report.kept_open] == ["old_open"]
    assert report.cache_entries == 1
    assert not (workspace / "dag" / "task" / "old" / "manifest.json").exists()


def test_a_later_now_makes_everything_old_except_open_runs(workspace: Path) -> None:
    report = clean_workspace(str(workspace), older_than="12h", now=time.time() + 2 * DAY, dry_run=True)
    assert sorted(Path(f.folder).name for f in report.deleted) == ["new", "old"]
    assert report.cache_entries == 2


@pytest.mark.parametrize(("text", "seconds"), [("30d", 30 * DAY), ("12h", 12 * 3600.0), ("90m", 5400.0)])
def test_ages_are_parsed(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


def test_a_bad_age_is_a_clear_error(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _left(workspace)
    assert main(["clean", "--older-than", "30 days", "--workspace", str(workspace)]) == 2
    err = capsys.readouterr().err
    assert "--older-than '30 days'" in err and "e.g. 90m, 12h, 7d" in err
    assert _left(workspace) == before
