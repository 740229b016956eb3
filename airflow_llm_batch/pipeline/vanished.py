"""A batch the provider no longer knows: HTTP 404 on a recorded batch id (the provider's retention
deleted it, or an emulator was restarted). Polling again cannot bring it back, so a poll reports it as
an ended, failed batch with code ``batch_not_found``; the worker then sends its rows again
(``pipeline/requeue.py``) instead of failing every try with the same 404.

The trigger and the worker's own poll loop both poll through :func:`progress_or_gone`.
"""

from __future__ import annotations

from typing import Protocol

from airflow_llm_batch.pipeline.types import BatchProgress, BatchState


class Polls(Protocol):
    """Anything that polls one batch: a backend, or the triggerer's raw poller (triggers/raw_poll.py)."""

    async def progress(self, batch_id: str) -> BatchProgress: ...


#: batch-level error code of a batch the provider answers 404 for
NOT_FOUND_CODE = "batch_not_found"
NOT_FOUND_STATUS = 404


async def progress_or_gone(backend: Polls, batch_id: str) -> BatchProgress:
    """One poll of ``batch_id``; a 404 becomes a failed progress with code ``batch_not_found``.

    Example: ``progress = await progress_or_gone(backend, "batch_abc")``
    """
    try:
        return await backend.progress(batch_id)
    except Exception as exc:  # SDK errors differ per provider; every one carries status_code
        if getattr(exc, "status_code", None) != NOT_FOUND_STATUS:
            raise
        return gone(batch_id, f"{type(exc).__name__}")


def gone(batch_id: str, detail: str) -> BatchProgress:
    """The progress of a batch the provider no longer has."""
    message = (f"the provider answered 404 for batch {batch_id} ({detail}): it no longer exists there, "
               f"so none of its answers can be fetched")
    return BatchProgress(batch_id=batch_id, state=BatchState.FAILED, provider_status="not_found",
                         errors=({"code": NOT_FOUND_CODE, "message": message},))
