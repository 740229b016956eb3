"""Durable run state in the workspace: intents before batches exist, batch ids after.

The manifest is the answer to "what has this task already paid for?". A retried or cleared task
loads it and re-attaches to its batches; a finished task re-lands its results without paying.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

from airflow_llm_batch.pipeline import task_state
from airflow_llm_batch.pipeline.storage import StoragePath, read_json, write_json_atomically

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
#: raised only for a change an older reader must not ignore; a new field a reader may skip keeps it (a reader
#: keeps the fields it does not know and writes them back as they were: ``later_fields``)
VERSION = 1


class ChunkState:
    PREPARED = "prepared"  # chunk file written, nothing sent
    SUBMITTING = "submitting"  # intent recorded: a create call may have reached the provider
    SUBMITTED = "submitted"  # batch id known
    ENDED = "ended"  # the batch reached a terminal state
    COLLECTED = "collected"  # answers joined and stored under results/


@dataclass
class ChunkRecord:
    index: int
    count: int
    bytes: int
    requests: str
    keys: str
    attempt: int = 1
    state: str = ChunkState.PREPARED
    tag: str | None = None
    batch_id: str | None = None
    intent_at: float | None = None
    submitted_at: float | None = None
    batch_state: str | None = None
    batch_errors: list[dict[str, Any]] = field(default_factory=list)
    results: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    tokens: int = 0
    retry_of: int | None = None
    requeues: int = 0
    previous_batch_ids: list[str] = field(default_factory=list)
    #: when a poll first saw the batch ended (tells which batches were open when another was refused)
    ended_at: float | None = None
    #: when a poll first saw the batch running (None: never seen running, e.g. it ended between polls)
    running_at: float | None = None
    #: the batch of an earlier run these rows wait on instead of being sent (see adopt.py)
    adopted: str | None = None
    #: the path that answers the chunk: None = a batch; "realtime" = sent one by one (realtime_chunks.py),
    #: recorded before the first send so no later try creates a batch for it
    path: str | None = None
    #: the price its results file carries (record_cost.price_note: each line with its ``cost_usd``, as landing
    #: writes it); None: unpriced (an unknown price, or a file written before rows were priced at collect)
    priced: str | None = None
    #: fields a later version wrote that this one does not know: kept, and saved back as they were
    later_fields: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_adopted(self) -> bool:
        """Rows adopted from another run's batch (before the check, or after, while they wait on it)."""
        return self.adopted is not None and self.batch_id in (None, self.adopted) and self.requeues == 0

    @property
    def is_open(self) -> bool:
        return self.state in (ChunkState.SUBMITTING, ChunkState.SUBMITTED)

    @property
    def is_final(self) -> bool:
        return self.state == ChunkState.COLLECTED


@dataclass
class Manifest:
    provider: str
    model: str
    run_tag: str
    digest: str
    total_rows: int
    chunks: list[ChunkRecord]
    created_at: float = field(default_factory=time.time)
    version: int = VERSION
    landed: dict[str, Any] | None = None
    breaker: dict[str, Any] | None = None
    cached_rows: int = 0
    follower_rows: int = 0
    cached_usage: dict[str, int] = field(default_factory=dict)
    answered_results: list[str] = field(default_factory=list)
    answered_counts: dict[str, int] = field(default_factory=dict)
    estimate: dict[str, Any] | None = None
    deadline: dict[str, Any] | None = None
    #: the smallest total (open batches + the refused chunk, in our token estimate) the provider refused
    #: for its enqueued-token limit: later chunks wait while open batches would reach it again
    refused_tokens: int | None = None
    #: the batch / real-time decision of this run (realtime.decision.ModeDecision.to_dict()), kept for resumes
    mode: dict[str, Any] | None = None
    #: the deadline's switch to real-time, once started (operators/deadline_fallback.py): a later try
    #: finishes it and never creates a batch again
    deadline_fallback: dict[str, Any] | None = None
    #: fields a later version wrote that this one does not know: kept, and saved back as they were
    later_fields: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def batch_ids(self) -> list[str]:
        return [b for c in self.chunks for b in [*c.previous_batch_ids, c.batch_id] if b]

    @property
    def chunks_done(self) -> bool:
        """Every chunk collected (rows answered without a batch may still need their results)."""
        return all(c.is_final for c in self.chunks)

    @property
    def is_done(self) -> bool:
        """Each input row has exactly one final result stored."""
        answered = bool(self.answered_results) or not (self.cached_rows or self.follower_rows)
        return self.chunks_done and answered

    @property
    def has_sent(self) -> bool:
        """Whether any chunk may have been paid for: a batch intent, or a chunk given to real-time."""
        return any(c.state != ChunkState.PREPARED or c.path is not None for c in self.chunks)

    @property
    def open_batch_ids(self) -> list[str]:
        return [c.batch_id for c in self.chunks if c.batch_id and c.state == ChunkState.SUBMITTED]

    def chunk_for(self, batch_id: str) -> ChunkRecord:
        for chunk in self.chunks:
            if chunk.batch_id == batch_id:
                return chunk
        raise KeyError(batch_id)

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        for chunk in document["chunks"]:
            chunk.update(chunk.pop("later_fields"))
        document.update(document.pop("later_fields"))
        return document

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """The manifest of a saved document; fields a later version added are kept (``later_fields``),
        with a warning, so rolling the package back mid-run neither fails nor loses them."""
        if data.get("version") != VERSION:
            raise ValueError(f"manifest version {data.get('version')} is not supported (expected {VERSION})")
        chunks = [_known(ChunkRecord, c) for c in data["chunks"]]
        manifest = _known(cls, {**data, "chunks": chunks})
        later = sorted({*manifest.later_fields, *(name for c in chunks for name in c.later_fields)})
        if later:
            log.warning("The manifest holds field(s) %s that this version of airflow-llm-batch does not know: it "
                        "was written by a later version. They are kept as they are; upgrade the package to use "
                        "them", later)
        return manifest


_Record = TypeVar("_Record", ChunkRecord, Manifest)


def _known(cls: type[_Record], data: dict[str, Any]) -> _Record:
    """``cls`` made from the fields of ``data`` it has; the others go to its ``later_fields``."""
    names = {f.name for f in fields(cls)} - {"later_fields"}
    known = {k: v for k, v in data.items() if k in names}
    return cls(**known, later_fields={k: v for k, v in data.items() if k not in names})


class ManifestStore:
    """Loads and saves the manifest of one task run folder, atomically; the one save path.

    Inside an Airflow task every save is mirrored to the task state store bound to the folder
    (pipeline/task_state.py), and a load on a worker whose folder is empty restores it from there:
    :attr:`restored` then says the chunk files must be rebuilt (``task_state.rebuild``).
    """

    def __init__(self, folder: StoragePath) -> None:
        self.folder = folder
        self.path = folder / MANIFEST_NAME
        #: the last load came from the task state store: the run folder is empty on this worker
        self.restored = False

    def load(self) -> Manifest | None:
        self.restored = False
        if self.path.exists():
            return Manifest.from_dict(read_json(self.path))
        state = task_state.bound(self.folder)
        document = state.get(task_state.MANIFEST_KEY) if state is not None else None
        if document is None:
            return None
        self.restored = True
        log.info("No manifest in %s on this worker: run state restored from the task state store", self.folder)
        return Manifest.from_dict(document)

    def save(self, manifest: Manifest) -> None:
        write_json_atomically(self.path, manifest.to_dict())
        state = task_state.bound(self.folder)
        if state is not None:
            state.put(task_state.MANIFEST_KEY, task_state.stored_manifest(manifest))


def describe_resume(manifest: Manifest) -> str:
    """What a try that finds batches already created will do, for the log (counts and ids only).

    Example: ``"re-attaching: 3 batch(es) already created, every row answered: nothing new to send;
    landing the results again"``.
    """
    created = len(manifest.batch_ids)
    if manifest.is_done:
        return (f"re-attaching: {created} batch(es) already created, every row answered: nothing new to "
                f"send; landing the results again")
    waiting = [c for c in manifest.chunks if c.state == ChunkState.PREPARED]
    return (f"re-attaching: {created} batch(es) already created, {len(manifest.open_batch_ids)} still open; "
            f"{sum(c.count for c in waiting)} row(s) in {len(waiting)} chunk(s) not sent yet")
