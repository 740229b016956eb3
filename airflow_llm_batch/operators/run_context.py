"""One try of one task run, as the operators and the sensor see it: the run's folder and tags, its
manifest store, how it reaches the provider, and the engine settings each BatchRun of the try gets.

The operators' methods take this one object instead of passing the provider access, the Airflow
context and the manifest around. Steps that call the provider go through :meth:`TaskRun.call` (the
backend and its SDK client are built and closed in that call); steps that only read or record the
run's files use :attr:`TaskRun.store` or :meth:`TaskRun.records` and build no client.

Example::

    run = TaskRun(access=ProviderAccess.resolve("openai", None), folder=run_folder(None, context),
                  tags=run_tags(context))
    manifest = run.load("was the workspace removed?")
    progress = run.call(lambda batch_run: batch_run.poll(manifest))
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from airflow.sdk import ObjectStoragePath

from airflow_llm_batch.exceptions import ReattachError
from airflow_llm_batch.operators.access import ProviderAccess
from airflow_llm_batch.operators.paths import default_workspace, run_folder, run_tags
from airflow_llm_batch.pipeline.backend import BatchBackend
from airflow_llm_batch.pipeline.cache import AnswerCache
from airflow_llm_batch.pipeline.manifest import Manifest, ManifestStore
from airflow_llm_batch.pipeline.policy import Admission, RetryPolicy
from airflow_llm_batch.pipeline.run import BatchRun

T = TypeVar("T")


class NoProvider:
    """The backend of a BatchRun that only reads and records the run's files (progress a trigger
    reported, cancellations, the summary, the result rows): those steps make no provider call, so
    no SDK client is built for them. Any use of it is a bug, and says so."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"this step reads or records the run's files only and must not reach the provider "
                           f"(it asked for backend.{name}): run it through TaskRun.call")


@dataclass(kw_only=True)
class TaskRun:
    """The state and reach of one try of a task run (see the module docstring)."""

    access: ProviderAccess
    folder: ObjectStoragePath
    tags: dict[str, str]
    policy: RetryPolicy | None = None
    admission: Admission | None = None
    cache: AnswerCache | None = None
    store: ManifestStore = field(init=False)
    _manifest: Manifest | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.store = ManifestStore(self.folder)

    @property
    def manifest(self) -> Manifest:
        """The manifest this try works on (after :meth:`load` or :meth:`use`)."""
        if self._manifest is None:
            raise RuntimeError(f"no manifest loaded for {self.folder}")
        return self._manifest

    def use(self, manifest: Manifest) -> Manifest:
        self._manifest = manifest
        return manifest

    def load(self, missing: str, rebuild: Callable[[], Manifest] | None = None) -> Manifest:
        """The stored manifest; FileNotFoundError (``missing`` says what happened) when there is none.

        On a worker whose run folder is empty the manifest comes from the task state store and
        ``rebuild()`` (prepare again, which re-attaches) writes the chunk files; without it, a
        ReattachError says the workspace must be shared."""
        manifest = self.store.load()
        if manifest is None:
            raise FileNotFoundError(f"no manifest at {self.store.path}: {missing}")
        if self.store.restored:
            if rebuild is None:
                raise ReattachError(f"the run folder {self.folder} is empty on this worker: its chunk files and "
                                    f"results are not there. Use a workspace every worker shares.")
            return self.use(rebuild())
        return self.use(manifest)

    def call(self, work: Callable[[BatchRun], Awaitable[T]]) -> T:
        """Run ``work`` with a BatchRun whose backend is built, used and closed in one event loop."""
        return self.access.run(self.folder, self.tags, work, policy=self.policy, admission=self.admission,
                               cache=self.cache)

    def records(self) -> BatchRun:
        """A BatchRun over the run's files only (no backend, no client): record progress or
        cancellations, read the summary and the result rows."""
        return BatchRun(self.folder, cast(BatchBackend, NoProvider()), tags=self.tags, policy=self.policy,
                        admission=self.admission, cache=self.cache)

    def cancel(self, ids: list[str]) -> None:
        """Record ``ids`` as cancelled by this task (a later try resends their unanswered rows), then
        cancel them at the provider."""

        async def _cancel(run: BatchRun) -> None:
            run.remember_cancelled(ids)  # first: a later try resends their unanswered rows
            await asyncio.gather(*(run.backend.cancel(b) for b in ids))

        self.call(_cancel)


__all__ = ["NoProvider", "ProviderAccess", "TaskRun", "default_workspace", "run_folder", "run_tags"]
