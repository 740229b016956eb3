"""The run state that decides whether money is spent again, kept ALSO in Airflow's task state store.

With a Celery or Kubernetes executor a retry (or the resume after a deferral) may run on another
machine, where a local workspace folder is empty. The task state store (AIP-103,
``context["task_state_store"]``) lives in the metadata DB, is shared by every try of the task
instance and is reachable from any worker, so the manifest (ids, states, counts and file names:
nothing per row) and the ids of batches this task cancelled itself are mirrored there on every
save. The workspace keeps the bulk files; when they are missing, :func:`rebuild` checks that the
files a fresh ``prepare`` wrote are the ones the manifest names, and marks collected chunks for
collecting again (ended batches' results can be downloaded again).

The store is bound to a run folder once per try (``bind(folder, context["task_state_store"])``) and
found by the folder: outside Airflow (the engine alone, the triggerer) nothing is bound and the
workspace is the only copy.

Example::

    bind(folder, context.get("task_state_store"))
    ManifestStore(folder).save(manifest)  # writes manifest.json and the task state store key
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Protocol

from airflow_llm_batch.exceptions import ReattachError

if TYPE_CHECKING:
    from airflow_llm_batch.pipeline.manifest import ChunkRecord, Manifest
    from airflow_llm_batch.pipeline.prepare import PreparedInput

log = logging.getLogger(__name__)

MANIFEST_KEY = "llm_batch.manifest"
CANCELLED_KEY = "llm_batch.cancelled_by_task"
#: batch errors kept per chunk in the stored copy (the first one names the failure)
KEPT_ERRORS = 3


class StateStore(Protocol):
    """The slice of Airflow's ``TaskStateStoreAccessor`` used here (JSON values, per task instance)."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...


class TaskState:
    """One try's task state store, written only when a value changed (state changes, not polls)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._written: dict[str, str] = {}

    def put(self, key: str, value: Any) -> None:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
        if self._written.get(key) == text:
            return
        self.store.set(key, value)
        self._written[key] = text
        log.debug("Task state store: %s written (%d bytes)", key, len(text))

    def get(self, key: str) -> Any:
        return self.store.get(key)


_BOUND: dict[str, TaskState] = {}


def bind(folder: Any, store: StateStore | None) -> None:
    """Mirror the state of the run in ``folder`` to ``store`` (None: unbind, the workspace only)."""
    if store is None:
        _BOUND.pop(str(folder), None)
    else:
        _BOUND[str(folder)] = TaskState(store)


def bound(folder: Any) -> TaskState | None:
    """The task state store of the run in ``folder``, if this process has one."""
    return _BOUND.get(str(folder))


def stored_manifest(manifest: Manifest) -> dict[str, Any]:
    """The manifest as kept in the task state store: the same document, long error lists cut."""
    document = manifest.to_dict()
    for chunk in document["chunks"]:
        chunk["batch_errors"] = chunk["batch_errors"][:KEPT_ERRORS]
    return document


def rebuild(manifest: Manifest, prepared: PreparedInput, folder: Any) -> Manifest:
    """The manifest restored from the task state store, over chunk files a fresh prepare wrote.

    Raises ReattachError when a chunk's files cannot come from the rows (a retry or split chunk,
    written from an earlier try's results; rows failed without a batch) or the rows were routed
    otherwise (the request cache changed): then the workspace must be shared between workers.
    """
    rebuilt = {(c.requests, c.keys, c.count) for c in [*prepared.chunks, *prepared.adopted]}
    missing = [c.index for c in manifest.chunks if (c.requests, c.keys, c.count) not in rebuilt
               or (c.state == "collected" and c.batch_id is None)]  # failed unsent rows: results only
    routed = (prepared.cached_rows, prepared.follower_rows) == (manifest.cached_rows, manifest.follower_rows)
    if missing or not routed:
        raise ReattachError(
            f"the run folder {folder} is empty on this worker and the run state in Airflow's task state store "
            f"names files that cannot be rebuilt from the rows (chunk(s) {missing or 'none'}: retried or split "
            f"rows written from an earlier try's results; request-cache routing "
            f"{'unchanged' if routed else 'changed'}). Nothing new was submitted; batches {manifest.batch_ids} "
            f"are recorded. Use a workspace every worker shares (workspace='gs://...', 's3://...' or "
            f"'abfs://...', or [llm_batch] workspace), then clear the task."
        )
    recollect = [c for c in manifest.chunks if _recollect(c)]
    if manifest.answered_results:
        manifest.answered_results, manifest.answered_counts = [], {}
    log.info("Run folder %s rebuilt from the rows and the task state store: %d chunk(s), %d batch(es) recorded, "
             "%d collected chunk(s) to download again", folder, len(manifest.chunks), len(manifest.batch_ids),
             len(recollect))
    return manifest


def _recollect(chunk: ChunkRecord) -> bool:
    """A collected chunk whose results file is gone goes back to "ended": its answers are fetched again."""
    from airflow_llm_batch.pipeline.manifest import ChunkState

    if chunk.state != ChunkState.COLLECTED or chunk.batch_id is None:
        return False
    chunk.state, chunk.results, chunk.counts = ChunkState.ENDED, None, {}
    return True
