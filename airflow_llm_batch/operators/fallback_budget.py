"""``max_cost_usd`` and the deadline's fallback: the real-time part is priced before any batch is cancelled.

At the switch time the run's bill is bounded by what it has paid so far (the collected rows, batch rows
at the batch price, real-time rows at the real-time price) plus every row still open at the real-time
price (a row of a cancelled batch is paid once: by the batch if it answered before the cancel, else in
real time, and real-time is the dearer of the two). When that bound is over ``max_cost_usd`` the task
does not switch: the batches keep running and the run lands late rather than over budget. The decision
is made once, logged once, and kept in the manifest (``deadline_fallback`` with ``switched: false``)
for the summary and for every later try.

Example::

    if fallback_due(manifest, switch, now) and fallback_affordable(run, run.request, plan):
        fall_back(...)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_llm_batch.operators.run_context import TaskRun
from airflow_llm_batch.operators.settings import RequestSettings
from airflow_llm_batch.pipeline.cost import actual_cost
from airflow_llm_batch.pipeline.manifest import Manifest
from airflow_llm_batch.realtime.deadline import Fallback

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FallbackBill:
    """The most a switch to real-time can bring the run to (USD; None where the price is unknown)."""

    spent_usd: float | None
    realtime_usd: float | None
    rows_left: int
    budget_usd: float

    @property
    def total_usd(self) -> float | None:
        if self.spent_usd is None or self.realtime_usd is None:
            return None
        return self.spent_usd + self.realtime_usd

    @property
    def within_budget(self) -> bool:
        """Unknown prices count as over: the budget cannot be checked, so no money is moved."""
        return self.total_usd is not None and self.total_usd <= self.budget_usd

    def to_dict(self) -> dict[str, Any]:
        return {"spent_usd": self.spent_usd, "realtime_usd": self.realtime_usd, "estimate_usd": self.total_usd,
                "budget_usd": self.budget_usd, "rows_left": self.rows_left}


def fallback_bill(run: TaskRun, request: RequestSettings, budget_usd: float) -> FallbackBill:
    """Paid so far plus every open row at the real-time price estimate."""
    manifest = run.manifest
    price, _ = request.price()
    summary = run.records().summary(manifest)
    spent = actual_cost(price, summary.usage, realtime_usage=summary.realtime_usage).paid_usd
    open_chunks = [c for c in manifest.chunks if not c.is_final]
    left = request.estimate_of(open_chunks)
    return FallbackBill(spent, left.realtime_usd, left.rows, budget_usd)


def switched(manifest: Manifest) -> bool:
    """Whether the deadline's switch has started (a declined switch is recorded with ``switched: false``)."""
    return manifest.deadline_fallback is not None and bool(manifest.deadline_fallback.get("switched", True))


def declined(manifest: Manifest) -> bool:
    return manifest.deadline_fallback is not None and not switched(manifest)


def fallback_affordable(run: TaskRun, request: RequestSettings, plan: Fallback | None) -> bool:
    """Whether the due switch may go ahead: no ``max_cost_usd``, a switch already started by a try, or a
    bill within the budget. Otherwise the refusal is recorded in the manifest and logged once."""
    manifest = run.manifest
    if manifest.deadline_fallback is not None:
        return switched(manifest)
    if request.max_cost_usd is None:
        return True
    bill = fallback_bill(run, request, float(request.max_cost_usd))
    if bill.within_budget:
        log.info("Deadline fallback within budget: %s", describe_bill(bill))
        return True
    manifest.deadline_fallback = {"switched": False, "at": datetime.now(timezone.utc).isoformat(),
                                  "deadline": plan.at.isoformat() if plan else None, "reason": "over max_cost_usd",
                                  "cancelled_batches": [], "realtime_rows": 0, **bill.to_dict()}
    run.store.save(manifest)
    log.warning("Deadline fallback NOT taken: %s. The %d open batch(es) keep running and the run may land "
                "after the deadline rather than over budget.", describe_bill(bill), len(manifest.open_batch_ids))
    return False


def describe_bill(bill: FallbackBill) -> str:
    """"sending the 150 row(s) left in real time brings the run to ~$0.0412 (paid $0.0012 + real-time
    ~$0.0400) against max_cost_usd=$0.0300"."""
    if bill.total_usd is None:
        return (f"the {bill.rows_left:,} row(s) left cannot be priced (the model has no known price), so "
                f"max_cost_usd=${bill.budget_usd:.4f} cannot be checked")
    assert bill.spent_usd is not None and bill.realtime_usd is not None
    return (f"sending the {bill.rows_left:,} row(s) left in real time brings the run to ~${bill.total_usd:.4f} "
            f"(paid ${bill.spent_usd:.4f} + real-time ~${bill.realtime_usd:.4f}) against "
            f"max_cost_usd=${bill.budget_usd:.4f}")
