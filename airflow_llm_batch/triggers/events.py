"""The trigger event schema (public: kept backward compatible once released)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from airflow_llm_batch.pipeline.types import BatchProgress

EVENT_VERSION = 1


class WaitOutcome(str, enum.Enum):
    ENDED = "ended"  # every watched batch reached a terminal state
    TIMEOUT = "timeout"  # the task's timeout passed first
    ERROR = "error"  # polling failed permanently (auth, unknown batch) or too many transient errors


@dataclass(frozen=True)
class WaitEvent:
    outcome: WaitOutcome
    batches: list[BatchProgress] = field(default_factory=list)
    message: str | None = None

    def to_payload(self) -> dict[str, Any]:
        return {
            "version": EVENT_VERSION,
            "status": self.outcome.value,
            "batches": [b.to_dict() for b in self.batches],
            "message": self.message,
        }

    @classmethod
    def from_payload(cls, payload: Any) -> WaitEvent:
        if not isinstance(payload, dict) or payload.get("version") != EVENT_VERSION:
            raise ValueError(f"unexpected trigger event {payload!r}")
        return cls(
            outcome=WaitOutcome(payload["status"]),
            batches=[BatchProgress.from_dict(b) for b in payload.get("batches", [])],
            message=payload.get("message"),
        )
