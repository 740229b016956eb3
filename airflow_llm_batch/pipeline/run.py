"""One task's batch run: prepare or re-attach, submit under recorded intents, poll, collect, re-read.

``BatchRun`` is provider-neutral and Airflow-free, a thin facade over the parts that do the work:
:class:`~airflow_llm_batch.pipeline.submitter.Submitter` (admission, intents, re-attach, adopt),
:class:`~airflow_llm_batch.pipeline.collector.Collector` (download, classify, store), and
:class:`~airflow_llm_batch.pipeline.run_folder.RunFolder` (manifest, results and summary, which need
no backend). The Airflow operators drive it: ``submit`` on the worker, ``poll`` in the trigger
(through the backend only) or on the worker in sync mode, ``collect`` and ``iter_results`` on the
worker after the batches end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from airflow_llm_batch.exceptions import InputChangedError
from airflow_llm_batch.pipeline.backend import BatchBackend
from airflow_llm_batch.pipeline.collector import Collector
from airflow_llm_batch.pipeline.fingerprint import endpoint_identity, request_fingerprint
from airflow_llm_batch.pipeline.manifest import ChunkRecord, ChunkState, Manifest, ManifestStore
from airflow_llm_batch.pipeline.parsing import OutputParser
from airflow_llm_batch.pipeline.policy import Admission, RetryPolicy
from airflow_llm_batch.pipeline.prepare import PreparedInput, PrepareOptions, prepare
from airflow_llm_batch.pipeline.render import RequestSpec
from airflow_llm_batch.pipeline.run_folder import CANCELLED_FILE, RunFolder
from airflow_llm_batch.pipeline.storage import StoragePath
from airflow_llm_batch.pipeline.submitter import FIND_SLACK_SECONDS, Submitter
from airflow_llm_batch.pipeline.summary import RunSummary
from airflow_llm_batch.pipeline.task_state import rebuild
from airflow_llm_batch.pipeline.types import BatchProgress, ResultRow
from airflow_llm_batch.pipeline.vanished import progress_or_gone
from airflow_llm_batch.pipeline.waiting import note_running

log = logging.getLogger(__name__)

__all__ = ["CANCELLED_FILE", "FIND_SLACK_SECONDS", "BatchRun", "new_manifest"]


class BatchRun:
    """The batches of one task run, kept in ``folder`` (a workspace path unique to the task run).

    Example::

        run = BatchRun(folder, backend, tags={"dag_id": "d", "task_id": "t", "run_id": "r"})
        manifest = run.prepare_or_load(lambda: rows, spec)
        await run.submit(manifest)
        while not all_done(await run.poll(manifest)): ...
        await run.collect(manifest, OutputParser(MyModel))
    """

    def __init__(
        self,
        folder: StoragePath,
        backend: BatchBackend,
        *,
        tags: Mapping[str, str],
        policy: RetryPolicy | None = None,
        admission: Admission | None = None,
        cache: Any = None,
    ) -> None:
        self.folder = folder
        self.backend = backend
        self.tags = {k: str(v)[:500] for k, v in tags.items()}
        self.run_folder = RunFolder(folder)
        self.store: ManifestStore = self.run_folder.store
        self.policy = policy or RetryPolicy()
        self.admission = admission or Admission()
        #: the request cache (pipeline.cache.AnswerCache) or None when caching is off
        self.cache = cache
        self.submitter = Submitter(folder, backend, self.store, tags=self.tags, admission=self.admission,
                                   cache=cache)
        self.collector = Collector(self.run_folder, backend, policy=self.policy, cache=cache)

    # -- preparing ---------------------------------------------------------------------------------
    def prepare_or_load(
        self,
        rows: Callable[[], Iterable[Mapping[str, Any]]],
        spec: RequestSpec,
        *,
        max_rows_per_chunk: int | None = None,
        carry: tuple[str, ...] = (),
    ) -> Manifest:
        """Load this run's manifest if batches may exist, else validate and write the chunks.

        ``rows`` is called once per pass (a second pass checks that a retry sees the same rows).
        """
        options = self._prepare_options(max_rows_per_chunk, carry)
        existing = self.store.load()
        if existing is not None and self.store.restored:  # the run folder is empty on this worker
            prepared = prepare(rows(), spec, folder=self.folder, backend=self.backend, options=options)
            self._check_same_input(existing, prepared.digest)
            self.store.save(rebuild(existing, prepared, self.folder))
            return existing
        if existing is not None and existing.has_sent:
            checked = dataclasses.replace(options, write=False)  # the digest only: nothing is written
            self._check_same_input(existing, prepare(rows(), spec, folder=self.folder, backend=self.backend,
                                                     options=checked).digest)
            log.info("Re-attaching to %d chunk(s) recorded in %s", len(existing.chunks), self.store.path)
            return existing
        prepared = prepare(rows(), spec, folder=self.folder, backend=self.backend, options=options)
        manifest = new_manifest(prepared, provider=self.backend.name, model=spec.model, tags=self.tags)
        self.store.save(manifest)
        return manifest

    def _check_same_input(self, existing: Manifest, digest: str) -> None:
        if digest != existing.digest:
            raise InputChangedError(
                f"the rows or prompt differ from those already submitted for this task run "
                f"(batches {existing.batch_ids}). Nothing new was submitted. Restore the input to "
                f"re-attach, or delete {self.folder} (or use another workspace) to start over and pay again."
            )

    def _prepare_options(self, max_rows_per_chunk: int | None, carry: tuple[str, ...]) -> PrepareOptions:
        reads = self.cache is not None and self.cache.mode.reads
        return PrepareOptions(max_rows_per_chunk, self.admission.token_budget, carry,
                              fingerprint=self._fingerprint if self.cache is not None else None,
                              cache=self.cache if reads else None, in_flight=self._in_flight if reads else None)

    def _fingerprint(self, line: dict[str, Any]) -> str:
        return request_fingerprint(self.backend.name, line, self._endpoint)

    @functools.cached_property
    def _endpoint(self) -> str:
        return endpoint_identity(self.backend)

    def _in_flight(self, fps: list[str]) -> dict[str, Any]:
        return dict(self.cache.find_in_flight(fps, max_age=self.backend.limits.results_retention_seconds))

    # -- batches we cancelled ourselves (on_kill) ----------------------------------------------------
    def remember_cancelled(self, batch_ids: Iterable[str]) -> None:
        """See :meth:`RunFolder.remember_cancelled`."""
        self.run_folder.remember_cancelled(batch_ids)

    # -- submitting --------------------------------------------------------------------------------
    async def submit(self, manifest: Manifest) -> list[str]:
        """Create batches for waiting chunks, as admission allows (see :class:`Submitter`)."""
        return await self.submitter.submit(manifest)

    # -- polling -----------------------------------------------------------------------------------
    async def poll(self, manifest: Manifest) -> list[BatchProgress]:
        """Poll every open batch once and record the ones that ended."""
        ids = manifest.open_batch_ids
        progress = list(await asyncio.gather(*(progress_or_gone(self.backend, b) for b in ids)))
        self.record_progress(manifest, progress)
        return progress

    def record_progress(self, manifest: Manifest, progress: Iterable[BatchProgress]) -> None:
        changed = False
        for item in progress:
            chunk = manifest.chunk_for(item.batch_id)
            changed |= note_running(chunk, item)
            if chunk.state == ChunkState.SUBMITTED and item.state.is_terminal:
                chunk.state, chunk.batch_state = ChunkState.ENDED, item.state.value
                chunk.ended_at = time.time()
                chunk.batch_errors = list(item.errors)
                changed = True
        if changed:
            self.store.save(manifest)

    # -- collecting --------------------------------------------------------------------------------
    async def collect(self, manifest: Manifest, parser: OutputParser) -> None:
        """Download, join and store the answers of every ended chunk not yet collected (see Collector)."""
        await self.collector.collect(manifest, parser)

    def finalize(self, manifest: Manifest, parser: OutputParser) -> None:
        """Write the results of rows answered without a batch (see :meth:`RunFolder.finalize`)."""
        self.run_folder.finalize(manifest, parser)

    # -- reading -----------------------------------------------------------------------------------
    def iter_results(self, manifest: Manifest) -> Iterator[ResultRow]:
        """Every final result row: one per input row once ``manifest.is_done``."""
        return self.run_folder.iter_results(manifest)

    def summary(self, manifest: Manifest) -> RunSummary:
        return self.run_folder.summary(manifest)


def new_manifest(prepared: PreparedInput, *, provider: str, model: str, tags: Mapping[str, str]) -> Manifest:
    """The manifest of a freshly prepared run: one chunk per chunk file, adopted chunks last."""
    files = [*prepared.chunks, *prepared.adopted]
    return Manifest(
        provider=provider,
        model=model,
        run_tag=_run_tag(tags),
        digest=prepared.digest,
        total_rows=prepared.total_rows,
        chunks=[ChunkRecord(index, c.count, c.bytes, c.requests, c.keys, tokens=c.tokens, adopted=c.adopted)
                for index, c in enumerate(files)],
        cached_rows=prepared.cached_rows,
        follower_rows=prepared.follower_rows,
        cached_usage=prepared.cached_usage.to_dict(),
    )


def _run_tag(tags: Mapping[str, str]) -> str:
    basis = json.dumps(dict(sorted(tags.items())), sort_keys=True) + f"|{time.time_ns()}"
    return "llmb-" + hashlib.sha256(basis.encode()).hexdigest()[:16]
