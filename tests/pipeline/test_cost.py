"""Cost estimate, budget stop and actual cost, checked against figures computed by hand."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from airflow_llm_batch.exceptions import BudgetExceededError, InvalidInputError, LLMBatchError, ProviderError
from airflow_llm_batch.pipeline.cost import (
    CostEstimate,
    actual_cost,
    check_budget,
    estimate_cost,
    row_cost_usd,
)
from airflow_llm_batch.pipeline.prices import ModelPrice, PriceTable
from airflow_llm_batch.pipeline.types import Usage

# a price with a distinct figure in every field, so a wrong field shows in the result
PRICE = ModelPrice(input=0.15, cached_input=0.075, output=0.60, batch_input=0.075, batch_cached_input=0.0375,
                   batch_output=0.30)


def estimate(max_per_row: int | None = 256, price: ModelPrice | None = PRICE) -> CostEstimate:
    return estimate_cost(price, rows=1_000, input_tokens=250_000, expected_output_tokens_per_row=40,
                         max_output_tokens_per_row=max_per_row)


# --- estimate ----------------------------------------------------------------------------------

def test_estimate_by_hand() -> None:
    e = estimate()
    assert (e.rows, e.input_tokens, e.expected_output_tokens, e.max_output_tokens) == (1_000, 250_000, 40_000,
                                                                                      256_000)
    # batch: 250k x $0.075/M = $0.01875, 40k x $0.30/M = $0.012
    assert e.batch_usd == pytest.approx(0.03075)
    # real-time: 250k x $0.15/M = $0.0375, 40k x $0.60/M = $0.024
    assert e.realtime_usd == pytest.approx(0.0615)
    # worst case: every row writes 256 tokens: 256k x $0.30/M = $0.0768, plus the input
    assert e.worst_case_batch_usd == pytest.approx(0.09555)
    assert e.price_known


def test_estimate_without_an_output_cap_has_no_worst_case() -> None:
    e = estimate(max_per_row=None)
    assert e.max_output_tokens is None and e.worst_case_batch_usd is None
    assert e.batch_usd == pytest.approx(0.03075)


def test_estimate_for_embeddings_is_input_only() -> None:
    e = estimate_cost(PriceTable.default().price_for("openai", "text-embedding-3-small"), rows=10,
                      input_tokens=1_000_000, expected_output_tokens_per_row=0, max_output_tokens_per_row=0)
    assert e.batch_usd == pytest.approx(0.01) and e.worst_case_batch_usd == pytest.approx(0.01)
    assert e.realtime_usd == pytest.approx(0.02)


def test_unknown_price_is_unknown_not_zero() -> None:
    e = estimate(price=None)
    assert not e.price_known
    assert e.batch_usd is None and e.realtime_usd is None and e.worst_case_batch_usd is None
    assert e.to_dict() == {"rows": 1_000, "input_tokens": 250_000, "expected_output_tokens": 40_000,
                           "max_output_tokens": 256_000, "batch_usd": None, "realtime_usd": None,
                           "worst_case_batch_usd": None, "price_known": False}


@pytest.mark.parametrize("field", ["rows", "input_tokens", "expected_output_tokens_per_row",
                                   "max_output_tokens_per_row"])
def test_estimate_rejects_negative_counts(field: str) -> None:
    args: dict[str, int] = {"rows": 1, "input_tokens": 1, "expected_output_tokens_per_row": 1,
                            "max_output_tokens_per_row": 1, field: -1}
    with pytest.raises(ValueError, match=field):
        estimate_cost(PRICE, **args)


# --- budget ------------------------------------------------------------------------------------

def test_no_budget_checks_nothing() -> None:
    check_budget(estimate(), None)
    check_budget(estimate(price=None), None)


def test_within_budget_passes_and_equal_is_within() -> None:
    check_budget(estimate(), 1.0)
    check_budget(estimate(), 0.09555 + 1e-12)


def test_worst_case_is_compared_when_known() -> None:
    # expected $0.03075 is within $0.05, but 1,000 rows x 256 max tokens could cost $0.09555
    with pytest.raises(BudgetExceededError) as info:
        check_budget(estimate(), 0.05)
    message = str(info.value)
    assert "worst case" in message and "$0.09555" in message and "max_cost_usd=$0.05" in message
    assert "expected $0.03075" in message and "1,000 row(s)" in message and "Nothing was submitted" in message


def test_expected_cost_is_compared_without_an_output_cap() -> None:
    check_budget(estimate(max_per_row=None), 0.05)
    with pytest.raises(BudgetExceededError, match=r"\$0\.03075 \(expected") as info:
        check_budget(estimate(max_per_row=None), 0.03)
    assert "worst case is unknown" in str(info.value)


def test_budget_with_unknown_price_stops_and_says_how_to_price() -> None:
    with pytest.raises(BudgetExceededError, match="no known price") as info:
        check_budget(estimate(price=None), 100.0)
    assert "prices=" in str(info.value)


def test_zero_budget_stops_any_paid_run() -> None:
    with pytest.raises(BudgetExceededError):
        check_budget(estimate(), 0)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "10"])
def test_bad_budget_is_invalid_input(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="max_cost_usd"):
        check_budget(estimate(), bad)  # type: ignore[arg-type]


def test_budget_error_is_a_spend_decision_not_a_provider_fault() -> None:
    assert issubclass(BudgetExceededError, LLMBatchError)
    assert not issubclass(BudgetExceededError, ProviderError)


def test_budget_stop_comes_before_anything_is_paid() -> None:
    """The order the engine follows: estimate, check, and only then upload/submit."""
    calls: list[str] = []

    def run(submit: Callable[[], None], budget: float) -> None:
        e = estimate_cost(PRICE, rows=1_000, input_tokens=250_000, expected_output_tokens_per_row=40,
                          max_output_tokens_per_row=256)
        check_budget(e, budget)
        submit()

    with pytest.raises(BudgetExceededError):
        run(lambda: calls.append("submit"), budget=0.01)
    assert calls == []
    run(lambda: calls.append("submit"), budget=1.0)
    assert calls == ["submit"]


# --- actual cost -------------------------------------------------------------------------------

def test_actual_cost_by_hand_with_cached_tokens_and_cached_rows() -> None:
    usage = Usage(input_tokens=2_000_000, output_tokens=300_000, cached_input_tokens=500_000)
    report = actual_cost(PRICE, usage, cached_usage=Usage(100_000, 20_000), cached_rows=50, taken_on="2026-11-22")
    # batch: 1.5M uncached x $0.075 = $0.1125; 0.5M cached x $0.0375 = $0.01875; 0.3M out x $0.30 = $0.09
    assert report.batch_usd == pytest.approx(0.22125)
    # real-time: 1.5M x $0.15 = $0.225; 0.5M x $0.075 = $0.0375; 0.3M x $0.60 = $0.18
    assert report.realtime_usd == pytest.approx(0.4425)
    assert report.saving_usd == pytest.approx(0.22125)
    # the 50 cached rows had used 100k in / 20k out: $0.0075 + $0.006 at batch price
    assert report.cached_saving_usd == pytest.approx(0.0135)
    assert report.cached_rows == 50 and report.price_known and report.taken_on == "2026-11-22"
    d = report.to_dict()
    assert d["usage"] == {"input_tokens": 2_000_000, "output_tokens": 300_000, "cached_input_tokens": 500_000,
                          "total_tokens": 2_300_000}
    assert d["saving_usd"] == pytest.approx(0.22125) and d["cached_rows"] == 50


def test_actual_cost_without_price_is_unknown() -> None:
    report = actual_cost(None, Usage(10, 10), cached_rows=3, taken_on="2026-11-22")
    assert not report.price_known
    assert (report.batch_usd, report.realtime_usd, report.saving_usd, report.cached_saving_usd) == (None,) * 4
    assert report.to_dict()["cached_rows"] == 3


def test_nothing_used_costs_nothing() -> None:
    report = actual_cost(PRICE, Usage())
    assert (report.batch_usd, report.realtime_usd, report.saving_usd, report.cached_saving_usd) == (0, 0, 0, 0)


def test_row_cost_is_the_batch_price_of_the_row() -> None:
    # 800 uncached x $0.075 + 200 cached x $0.0375 + 100 out x $0.30, per 1M
    assert row_cost_usd(PRICE, Usage(1_000, 100, 200)) == pytest.approx(97.5e-6)
    assert row_cost_usd(None, Usage(1_000, 100)) is None


def test_more_cached_than_input_tokens_is_capped() -> None:
    assert row_cost_usd(PRICE, Usage(100, 0, 500)) == pytest.approx(100 * 0.0375 / 1e6)


def test_rows_add_up_to_the_report() -> None:
    rows = [Usage(1_200, 80, 0), Usage(900, 40, 512), Usage(3_000, 250, 1_024)]
    total = Usage()
    for usage in rows:
        total = total + usage
    report = actual_cost(PRICE, total)
    assert sum(row_cost_usd(PRICE, u) or 0 for u in rows) == pytest.approx(report.batch_usd)


def test_packaged_price_gives_the_documented_gpt_4o_mini_cost() -> None:
    price = PriceTable.default().price_for("openai", "gpt-4o-mini-2024-07-18")
    report = actual_cost(price, Usage(1_000_000, 1_000_000))
    assert report.batch_usd == pytest.approx(0.375) and report.realtime_usd == pytest.approx(0.75)
