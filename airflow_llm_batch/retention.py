"""Retention: delete task run folders and request-cache entries older than an age.

Run folders hold rendered prompts (which may carry personal data) and the downloaded answers; the
request cache holds answers by request fingerprint. Nothing else ever deletes them, so a deployment
runs ``airflow-llm-batch clean --older-than 30d`` (or the maintenance DAG in
``example_dags/llm_batch_maintenance.py``, which calls :func:`clean_workspace`).

Age is the time since the newest file of a run folder was last written (a run still being written is
young), and since a cache entry was written. A run folder whose manifest has open batches (submitted
and not ended, or a create call in flight) is kept unless ``force``: a later try re-attaches to them.
Works on any workspace the engine works on (``file://``, ``gs://``, ``s3://``... through
:class:`~airflow_llm_batch.pipeline.storage.StoragePath`). Reports counts and bytes, never content.

Example::

    report = clean_workspace("gs://bucket/llm_batch_workspace", older_than="30d", dry_run=True)
    print(report.describe())
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from airflow_llm_batch.pipeline.storage import StoragePath

log = logging.getLogger(__name__)

#: the request cache's folder in a workspace (see operators/settings.py RequestSettings.answer_cache)
CACHE_DIR = "_cache"


@dataclass(frozen=True)
class FolderVerdict:
    """One old run folder: what it holds, and whether it goes."""

    folder: str
    files: int
    bytes: int
    open_batches: int


@dataclass
class CleanReport:
    """What :func:`clean_workspace` deleted (or would delete, with ``dry_run``)."""

    dry_run: bool
    deleted: list[FolderVerdict] = field(default_factory=list)
    kept_open: list[FolderVerdict] = field(default_factory=list)
    cache_entries: int = 0
    cache_bytes: int = 0

    @property
    def run_bytes(self) -> int:
        return sum(f.bytes for f in self.deleted)

    def describe(self) -> str:
        """Plain text: one line per run folder, then the totals (names, counts and bytes only)."""
        verb = "would delete" if self.dry_run else "deleted"
        lines = [f"{verb} {f.folder}: {f.files} file(s), {f.bytes:,} bytes" for f in self.deleted]
        lines += [f"kept {f.folder}: {f.open_batches} open batch(es); --force deletes it anyway"
                  for f in self.kept_open]
        lines.append(f"{verb}: {len(self.deleted)} run folder(s), {self.run_bytes:,} bytes; "
                     f"{self.cache_entries} cache entr{'y' if self.cache_entries == 1 else 'ies'}, "
                     f"{self.cache_bytes:,} bytes; kept {len(self.kept_open)} run folder(s) with open batches")
        return "\n".join(lines)


def parse_age(text: str) -> float:
    """``"30d"`` -> seconds (s, m, h, d, w); ValueError naming ``--older-than`` and the accepted forms."""
    from airflow_llm_batch.report.runs import parse_since

    return parse_since(text, option="--older-than")


def clean_workspace(workspace: str | StoragePath | None = None, *, older_than: str | float = "30d",
                    dry_run: bool = False, force: bool = False, now: float | None = None) -> CleanReport:
    """Delete run folders and request-cache entries of ``workspace`` (default: ``[llm_batch] workspace``)
    last written more than ``older_than`` ago ("30d", "12h", "90m" or seconds)."""
    from airflow_llm_batch.operators.paths import workspace_path
    from airflow_llm_batch.sources.rows import to_path

    root = workspace_path(workspace) if workspace is None or isinstance(workspace, str) else workspace
    if isinstance(root, str):
        root = to_path(root)
    age = parse_age(older_than) if isinstance(older_than, str) else float(older_than)
    cutoff = (time.time() if now is None else now) - age
    report = CleanReport(dry_run=dry_run)
    _clean_runs(root, cutoff, report, force)
    _clean_cache(root / CACHE_DIR, cutoff, report)
    log.info("Retention (%s, older than %s): %d run folder(s), %d cache entries, %d folder(s) kept with open "
             "batches", "dry run" if dry_run else "deleting", older_than, len(report.deleted),
             report.cache_entries, len(report.kept_open))
    return report


def _clean_runs(root: StoragePath, cutoff: float, report: CleanReport, force: bool) -> None:
    from airflow_llm_batch.report.runs import run_folders

    if not root.exists():
        return
    for folder in list(run_folders(root)):
        files = [(path, *_size_and_time(path)) for path in _files(folder)]
        if not files or max(mtime for _, _, mtime in files) >= cutoff:
            continue
        verdict = FolderVerdict(str(folder), len(files), sum(size for _, size, _ in files), _open_batches(folder))
        if verdict.open_batches and not force:
            report.kept_open.append(verdict)
            continue
        report.deleted.append(verdict)
        if not report.dry_run:
            _remove(folder, [path for path, _, _ in files])


def _clean_cache(cache: StoragePath, cutoff: float, report: CleanReport) -> None:
    if not cache.exists():
        return
    for path in _files(cache):
        size, mtime = _size_and_time(path)
        if mtime >= cutoff:
            continue
        report.cache_entries += 1
        report.cache_bytes += size
        if not report.dry_run:
            path.unlink(missing_ok=True)


def _open_batches(folder: StoragePath) -> int:
    """Batches of the run's manifest that may still run at the provider (submitted, or being created)."""
    from airflow_llm_batch.pipeline.manifest import ManifestStore

    try:
        manifest = ManifestStore(folder).load()
    except Exception:  # an unreadable manifest: nothing is known to be open
        log.warning("Retention: the manifest of %s is unreadable; treated as having no open batch", folder)
        return 0
    if manifest is None:
        return 0
    return sum(1 for c in manifest.chunks if c.is_open)


def _files(folder: StoragePath) -> Iterator[StoragePath]:
    for path in folder.rglob("*"):  # type: ignore[attr-defined]
        if path.is_file():
            yield path


def _size_and_time(path: StoragePath) -> tuple[int, float]:
    info: Any = path.stat()  # type: ignore[attr-defined]
    return int(info.st_size or 0), float(info.st_mtime or 0.0)


def _remove(folder: StoragePath, files: list[StoragePath]) -> None:
    """Delete the folder's files, then its now-empty directories (object storage has none to remove)."""
    for path in files:
        path.unlink(missing_ok=True)
    dirs = [p for p in folder.rglob("*") if p.is_dir()]  # type: ignore[attr-defined]
    for directory in [*sorted(dirs, key=lambda p: -len(p.parts)), folder]:
        try:
            directory.rmdir()
        except (OSError, NotImplementedError):  # not empty (written meanwhile) or not a real directory
            log.debug("Retention: left the directory %s", directory)
