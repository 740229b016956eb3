"""The trigger event schema (public: kept backward compatible once released)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow_llm_batch.pipeline.types import BatchProgress
from airflow_llm_batch.pipeline.waiting import WaitOutcome

EVENT_VERSION = 1

__all__ = ["EVENT_VERSION", "WaitEvent", "WaitOutcome"]


@dataclass(frozen=True)
class WaitEvent:
    outcome: WaitOutcome
    batches: list[BatchProgress] = field(default_factory=list)
    message: str | None = None
    #: batches found open longer than warn_after by this wait, and every batch reported so far
    stuck: tuple[str, ...] = ()
    warned: tuple[str, ...] = ()

    def to_payload(self) -> dict[str, Any]:
        return {
            "version": EVENT_VERSION,
            "status": self.outcome.value,
            "batches": [b.to_dict() for b in self.batches],
            "message": self.message,
            "stuck": list(self.stuck),
            "warned": list(self.warned),
        }

    @classmethod
    def from_payload(cls, payload: Any) -> WaitEvent:
        if not isinstance(payload, dict) or payload.get("version") != EVENT_VERSION:
            raise ValueError(f"unexpected trigger event {payload!r}")
        return cls(
            outcome=WaitOutcome(payload["status"]),
            batches=[BatchProgress.from_dict(b) for b in payload.get("batches", [])],
            message=payload.get("message"),
            stuck=tuple(payload.get("stuck", ())),
            warned=tuple(payload.get("warned", ())),
        )
