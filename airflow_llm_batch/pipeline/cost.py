"""Cost before and after: an estimate (and an optional budget stop) before anything is paid, and the
actual cost of what was paid, with the saving of batch over real-time and of the request cache.

Every figure is in USD from a :class:`~airflow_llm_batch.pipeline.prices.ModelPrice`. Without a
price the figures are ``None`` ("unknown"), never a guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from airflow_llm_batch.exceptions import BudgetExceededError, InvalidInputError
from airflow_llm_batch.pipeline.prices import ModelPrice
from airflow_llm_batch.pipeline.types import Usage

_PER = 1_000_000


@dataclass(frozen=True)
class CostEstimate:
    """What a run is expected to cost before it is submitted.

    ``input_tokens`` is the (upper-bound) prompt size of every row to send; output is estimated from
    ``expected_output_tokens`` and bounded by ``max_output_tokens`` when the request caps it. The
    USD figures are None when the price is unknown.

    Example::

        >>> price = ModelPrice(0.15, 0.075, 0.6, 0.075, 0.075, 0.3)
        >>> e = estimate_cost(price, rows=1000, input_tokens=200_000,
        ...                   expected_output_tokens_per_row=50, max_output_tokens_per_row=200)
        >>> round(e.batch_usd, 6), round(e.worst_case_batch_usd, 6)
        (0.03, 0.075)
    """

    rows: int
    input_tokens: int
    expected_output_tokens: int
    max_output_tokens: int | None
    batch_usd: float | None
    realtime_usd: float | None
    worst_case_batch_usd: float | None
    price_known: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "input_tokens": self.input_tokens,
            "expected_output_tokens": self.expected_output_tokens,
            "max_output_tokens": self.max_output_tokens,
            "batch_usd": self.batch_usd,
            "realtime_usd": self.realtime_usd,
            "worst_case_batch_usd": self.worst_case_batch_usd,
            "price_known": self.price_known,
        }


def estimate_cost(
    price: ModelPrice | None,
    *,
    rows: int,
    input_tokens: int,
    expected_output_tokens_per_row: int,
    max_output_tokens_per_row: int | None,
) -> CostEstimate:
    """Estimate the cost of sending ``rows`` requests holding ``input_tokens`` prompt tokens in all.

    No prompt-cache discount is assumed (the estimate is an upper bound on input). The worst case
    prices every row at ``max_output_tokens_per_row`` output tokens; it is None when that cap is
    unknown. With ``price=None`` every USD figure is None and ``price_known`` is False.
    """
    for name, value in (("rows", rows), ("input_tokens", input_tokens),
                        ("expected_output_tokens_per_row", expected_output_tokens_per_row)):
        _check_count(name, value)
    if max_output_tokens_per_row is not None:
        _check_count("max_output_tokens_per_row", max_output_tokens_per_row)
    expected_output = rows * expected_output_tokens_per_row
    max_output = None if max_output_tokens_per_row is None else rows * max_output_tokens_per_row
    if price is None:
        return CostEstimate(rows, input_tokens, expected_output, max_output, None, None, None, False)
    worst = None if max_output is None else _usd(input_tokens, price.batch_input) + _usd(max_output,
                                                                                          price.batch_output)
    return CostEstimate(
        rows=rows,
        input_tokens=input_tokens,
        expected_output_tokens=expected_output,
        max_output_tokens=max_output,
        batch_usd=_usd(input_tokens, price.batch_input) + _usd(expected_output, price.batch_output),
        realtime_usd=_usd(input_tokens, price.input) + _usd(expected_output, price.output),
        worst_case_batch_usd=worst,
        price_known=True,
    )


def check_budget(estimate: CostEstimate, max_cost_usd: float | None) -> None:
    """Stop before anything is paid when the estimate is over ``max_cost_usd``.

    The worst case (every row using its full output cap) is compared when it is known, else the
    expected cost. A budget with no known price cannot be checked, so it stops too. Both raise
    :class:`BudgetExceededError`; ``max_cost_usd=None`` checks nothing.
    """
    if max_cost_usd is None:
        return
    if isinstance(max_cost_usd, bool) or not isinstance(max_cost_usd, (int, float)) \
            or not math.isfinite(max_cost_usd) or max_cost_usd < 0:
        raise InvalidInputError(f"max_cost_usd must be a number >= 0 (USD), got {max_cost_usd!r}")
    if not estimate.price_known:
        raise BudgetExceededError(
            f"max_cost_usd={_fmt(max_cost_usd)} is set but the model has no known price, so the cost of "
            f"{estimate.rows} row(s) cannot be checked against it. Nothing was submitted. Price the model "
            f'with prices={{"<provider>": {{"<model>": {{"input": ..., "output": ...}}}}}} (USD per 1M '
            f"tokens), or remove max_cost_usd.")
    figure: float | None
    if estimate.worst_case_batch_usd is not None:
        figure, label = estimate.worst_case_batch_usd, (
            f"worst case, every row writing its max of {estimate.max_output_tokens:,} output tokens in all; "
            f"expected {_fmt(estimate.batch_usd)}")
    else:
        figure, label = estimate.batch_usd, (
            f"expected, {estimate.expected_output_tokens:,} output tokens in all; the worst case is "
            f"unknown because no max output tokens is set")
    assert figure is not None
    if figure > max_cost_usd:
        raise BudgetExceededError(
            f"estimated batch cost {_fmt(figure)} ({label}) for {estimate.rows:,} row(s) and "
            f"{estimate.input_tokens:,} input tokens is over the budget max_cost_usd={_fmt(max_cost_usd)}. "
            f"Nothing was submitted. Raise max_cost_usd, send fewer rows or lower the max output tokens.")


@dataclass(frozen=True)
class CostReport:
    """What a run cost: the batch rows at batch price, the real-time rows at the standard (real-time)
    price, what the batch rows would have cost real-time, and what the cache saved.

    ``usage`` is the total paid usage, ``realtime_usage`` the part of it sent in real time.
    ``batch_usd`` prices the batch part at batch price, ``realtime_paid_usd`` the real-time part at the
    real-time price, ``paid_usd`` is both. ``realtime_usd`` is what all of ``usage`` would cost in real
    time; ``saving_usd`` is what the batch rows saved over real-time (real-time rows save nothing).
    ``cached_rows`` were answered without a request (from the request cache or by an identical request
    of the same run); ``cached_saving_usd`` is what their recorded usage would have cost at batch
    price. USD figures are None when the price is unknown.

    Example::

        >>> price = ModelPrice(0.15, 0.075, 0.6, 0.075, 0.075, 0.3)
        >>> r = actual_cost(price, Usage(1_000_000, 100_000), cached_usage=Usage(500_000, 50_000),
        ...                 cached_rows=10, taken_on="2026-11-22")
        >>> round(r.batch_usd, 6), round(r.saving_usd, 6), round(r.cached_saving_usd, 6)
        (0.105, 0.105, 0.0525)
    """

    usage: Usage
    batch_usd: float | None
    realtime_usd: float | None
    saving_usd: float | None
    cached_rows: int
    cached_saving_usd: float | None
    price_known: bool
    taken_on: str
    realtime_usage: Usage = field(default_factory=Usage)
    realtime_paid_usd: float | None = None

    @property
    def paid_usd(self) -> float | None:
        if self.batch_usd is None or self.realtime_paid_usd is None:
            return None
        return self.batch_usd + self.realtime_paid_usd

    def to_dict(self) -> dict[str, Any]:
        return {
            "usage": self.usage.to_dict(),
            "batch_usd": self.batch_usd,
            "realtime_usd": self.realtime_usd,
            "saving_usd": self.saving_usd,
            "cached_rows": self.cached_rows,
            "cached_saving_usd": self.cached_saving_usd,
            "price_known": self.price_known,
            "taken_on": self.taken_on,
            "realtime_usage": self.realtime_usage.to_dict(),
            "realtime_paid_usd": self.realtime_paid_usd,
            "paid_usd": self.paid_usd,
        }


def actual_cost(
    price: ModelPrice | None,
    usage: Usage,
    *,
    cached_usage: Usage = Usage(),  # noqa: B008 (frozen, so sharing the default is safe)
    cached_rows: int = 0,
    taken_on: str = "",
    realtime_usage: Usage = Usage(),  # noqa: B008
) -> CostReport:
    """Price the paid ``usage``: its ``realtime_usage`` part at the real-time price, the rest at batch
    price; ``cached_usage`` is what the ``cached_rows`` answered without paying had used when they
    were first answered."""
    _check_count("cached_rows", cached_rows)
    if price is None:
        return CostReport(usage, None, None, None, cached_rows, None, False, taken_on, realtime_usage)
    batch_part = Usage(usage.input_tokens - realtime_usage.input_tokens,
                       usage.output_tokens - realtime_usage.output_tokens,
                       usage.cached_input_tokens - realtime_usage.cached_input_tokens)
    batch = _batch_usd(price, batch_part)
    return CostReport(
        usage=usage,
        batch_usd=batch,
        realtime_usd=_realtime_usd(price, usage),
        saving_usd=_realtime_usd(price, batch_part) - batch,
        cached_rows=cached_rows,
        cached_saving_usd=_batch_usd(price, cached_usage),
        price_known=True,
        taken_on=taken_on,
        realtime_usage=realtime_usage,
        realtime_paid_usd=_realtime_usd(price, realtime_usage),
    )


def row_cost_usd(price: ModelPrice | None, usage: Usage, *, realtime: bool = False) -> float | None:
    """One row's usage at batch price (at the real-time price with ``realtime``), or None when the
    price is unknown."""
    if price is None:
        return None
    return _realtime_usd(price, usage) if realtime else _batch_usd(price, usage)


def _batch_usd(price: ModelPrice, usage: Usage) -> float:
    return _priced(usage, price.batch_input, price.batch_cached_input, price.batch_output)


def _realtime_usd(price: ModelPrice, usage: Usage) -> float:
    return _priced(usage, price.input, price.cached_input, price.output)


def _priced(usage: Usage, input_rate: float, cached_rate: float, output_rate: float) -> float:
    """Cached input tokens are a subset of the input tokens and are priced at the cached rate.

    Should a backend report more cached than input tokens, the cached count is capped at the input
    count rather than billing phantom tokens.
    """
    cached = min(max(usage.cached_input_tokens, 0), max(usage.input_tokens, 0))
    uncached = max(usage.input_tokens, 0) - cached
    return _usd(uncached, input_rate) + _usd(cached, cached_rate) + _usd(max(usage.output_tokens, 0),
                                                                            output_rate)


def _usd(tokens: int, usd_per_mtok: float) -> float:
    return tokens * usd_per_mtok / _PER


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")


def _fmt(usd: float | None) -> str:
    """Dollars with cents, and up to six decimals below $100 so small batches stay readable."""
    if usd is None:
        return "unknown"
    if usd >= 100:
        return f"${usd:,.2f}"
    whole, _, fraction = f"{usd:.6f}".rstrip("0").partition(".")
    return f"${whole}.{fraction.ljust(2, '0')}"
