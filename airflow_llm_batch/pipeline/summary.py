"""What one task run did, in numbers: the summary the operators return (XCom) and log."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow_llm_batch.pipeline.types import Usage


@dataclass(frozen=True)
class RunSummary:
    total: int
    succeeded: int
    failed: int
    errors_by_code: dict[str, int]
    usage: Usage
    batch_ids: list[str]
    resubmitted_rows: int = 0
    requeued_batches: int = 0
    breaker: dict[str, Any] | None = None
    cached_rows: int = 0
    repeated_rows: int = 0
    sent_rows: int = 0
    adopted_rows: int = 0
    #: final rows by the path that answered them: "batch", "realtime", "cache" (not paid)
    rows_by_path: dict[str, int] | None = None
    #: the part of ``usage`` paid at the real-time (standard) price
    realtime_usage: Usage = field(default_factory=Usage)
    #: the batch / real-time decision (realtime.decision.ModeDecision.to_dict()), None for older runs
    mode: dict[str, Any] | None = None
    #: the deadline's switch to real-time: when, the batches cancelled, the rows sent in real time
    deadline_fallback: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "errors_by_code": self.errors_by_code,
            "usage": self.usage.to_dict(),
            "batch_ids": self.batch_ids,
            "resubmitted_rows": self.resubmitted_rows,
            "requeued_batches": self.requeued_batches,
            "breaker": self.breaker,
            "sent_rows": self.sent_rows,
            "cached_rows": self.cached_rows,
            "repeated_rows": self.repeated_rows,
            "adopted_rows": self.adopted_rows,
            "rows_by_path": self.rows_by_path,
            "realtime_usage": self.realtime_usage.to_dict(),
            "mode": self.mode,
            "deadline_fallback": self.deadline_fallback,
        }
