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
    cached) usage is computed once per path (batch or real-time; rows of a run repeat a few thousand
    usages: ~1.1 -> ~0.4 us per row), by the same ``row_cost_usd``, so the value is the same float. The
    join prices its plain records with :meth:`cost` (join.py). The memo is bounded."""

    #: distinct usages remembered (per path) before the memo starts over
    MEMO = 65_536

    def __init__(self, price: ModelPrice) -> None:
        self.price = price
        #: cost by (input, output, cached input) token counts: answered by a batch, and in real time
        self._memos: tuple[dict[tuple[int, int, int], float | None], ...] = ({}, {})

    def memo(self, realtime: bool) -> dict[tuple[int, int, int], float | None]:
        """The costs known so far by (input, output, cached input) tokens, for reading (:meth:`cost` fills it)."""
        return self._memos[realtime]

    def cost(self, tokens: tuple[int, int, int], realtime: bool) -> float | None:
        """The cost of a row with these (integer) token counts, answered in real time or by a batch."""
        memo = self._memos[realtime]
        cost = memo.get(tokens, _UNKNOWN)
        if cost is _UNKNOWN:
            if len(memo) >= self.MEMO:
                memo.clear()
            cost = memo[tokens] = row_cost_usd(self.price, Usage._make(tokens), realtime=realtime)
        return cost  # type: ignore[no-any-return]  # a float or None here

    def __call__(self, record: dict[str, Any]) -> dict[str, Any]:
        usage = record["usage"]
        record[COST_KEY] = self.cost((usage["input_tokens"], usage["output_tokens"], usage["cached_input_tokens"]),
                                     record["answered_by"] == "realtime")
        return record


#: what a memo gives for a usage not priced yet (None is a cost: the price does not know the model)
_UNKNOWN: Any = object()
