"""A result record's ``cost_usd``: the row's usage at the price of the path that answered it.

The one place a record is priced, used twice: when a chunk is collected (``answered.write_results``
with a price: the results file then carries each row's cost, and the chunk's manifest record notes
which price, :func:`price_note`) and when a run lands (``landing.with_record_cost``: rows of other
chunks, or when the price changed since). Both give the same value at the same key position (last,
or where the key already is), so a results file priced at collect is what landing would write.

Example::

    >>> note = price_note(price)           # "p-3f2a9c0d41be" (None for an unknown price)
    >>> record = price_record(record, price)  # record["cost_usd"] set in place
    >>> priced = map(RecordPricer(price), records)  # the same for many records at one price
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Any

from airflow_llm_batch.pipeline.cost import row_cost_usd
from airflow_llm_batch.pipeline.prices import ModelPrice
from airflow_llm_batch.pipeline.types import Usage

#: the key a landed row's cost goes under
COST_KEY = "cost_usd"


def price_note(price: ModelPrice | None) -> str | None:
    """A short identity of ``price`` (its six figures, exactly), or None for an unknown price: a
    results file priced at collect is copied as it is only when its note equals the landing price's."""
    if price is None:
        return None
    figures = json.dumps(asdict(price), sort_keys=True)
    return "p-" + hashlib.sha256(figures.encode()).hexdigest()[:12]


def price_record(record: dict[str, Any], price: ModelPrice) -> dict[str, Any]:
    """Set ``record[COST_KEY]`` (a ``ResultRow.to_dict()`` record) from its usage and ``answered_by``."""
    return RecordPricer(price)(record)


class RecordPricer:
    """:func:`price_record` at one price for many records: the cost of each distinct (input, output,
    cached, real-time) usage is computed once (rows of a run repeat a few thousand usages: ~1.1 -> ~0.4
    us per row), by the same ``row_cost_usd``, so the value is the same float. The memo is bounded."""

    #: distinct usages remembered before the memo starts over
    MEMO = 65_536

    def __init__(self, price: ModelPrice) -> None:
        self.price = price
        self._costs: dict[tuple[int, int, int, bool], float | None] = {}

    def __call__(self, record: dict[str, Any]) -> dict[str, Any]:
        usage = record["usage"]
        key = (usage["input_tokens"], usage["output_tokens"], usage["cached_input_tokens"],
               record["answered_by"] == "realtime")
        costs = self._costs
        if key in costs:
            record[COST_KEY] = costs[key]
            return record
        if len(costs) >= self.MEMO:
            costs.clear()
        record[COST_KEY] = costs[key] = row_cost_usd(self.price, Usage(key[0], key[1], key[2]), realtime=key[3])
        return record
