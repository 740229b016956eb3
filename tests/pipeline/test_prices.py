"""The price table: packaged data, lookup by exact name and snapshot, overrides."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import pytest

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.pipeline.prices import PRICE_FIELDS, ModelPrice, PriceTable


def price(input: float, output: float, **rest: Any) -> dict[str, Any]:
    return {"input": input, "output": output, **rest}


def table(models: dict[str, dict[str, Any]], provider: str = "openai") -> PriceTable:
    return PriceTable.from_dict({"taken_on": "2026-11-22", "providers": {provider: models}})


def packaged() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        resources.files("airflow_llm_batch.pipeline").joinpath("prices.json").read_text())
    return data


# --- the packaged data -------------------------------------------------------------------------

def test_packaged_table_is_dated_and_lists_every_price_explicitly() -> None:
    data = packaged()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", data["taken_on"])
    assert PriceTable.default().taken_on == data["taken_on"]
    assert set(data["providers"]) == {"openai", "anthropic", "gemini", "vertex"}
    for provider, models in data["providers"].items():
        for model, fields in models.items():
            # no field is left to a default in the shipped data: every figure was written on purpose
            assert set(PRICE_FIELDS) <= set(fields), (provider, model)
            assert set(fields) - set(PRICE_FIELDS) <= {"note", "source"}, (provider, model)


def test_packaged_prices_are_consistent() -> None:
    default = PriceTable.default()
    for provider in default.providers:
        for model in default.models(provider):
            p = default.price_for(provider, model)
            assert p is not None
            assert all(v >= 0 for v in p.to_dict().values())
            assert p.cached_input <= p.input and p.batch_cached_input <= p.batch_input, model
            assert p.batch_input == pytest.approx(p.input / 2), model  # batch APIs: half price
            assert p.batch_output == pytest.approx(p.output / 2), model
            assert p.batch_cached_input <= p.cached_input, model


def test_default_covers_the_common_models() -> None:
    default = PriceTable.default()
    for provider, model in [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("openai", "gpt-4.1"),
                            ("openai", "gpt-4.1-mini"), ("openai", "text-embedding-3-small"),
                            ("anthropic", "claude-sonnet-4-5"), ("anthropic", "claude-haiku-4-5"),
                            ("gemini", "gemini-2.5-flash"), ("gemini", "gemini-2.5-pro")]:
        assert default.price_for(provider, model) is not None, (provider, model)


def test_gpt_4o_mini_exact() -> None:
    assert PriceTable.default().price_for("openai", "gpt-4o-mini") == ModelPrice(
        input=0.15, cached_input=0.075, output=0.6, batch_input=0.075, batch_cached_input=0.075, batch_output=0.3)


def test_vertex_has_no_silent_fallback_to_gemini_prices() -> None:
    default = PriceTable.default()
    assert default.price_for("gemini", "gemini-2.5-flash") is not None
    assert default.price_for("vertex", "gemini-2.5-flash") is None  # not confirmed: unknown, not guessed


# --- lookup ------------------------------------------------------------------------------------

def test_dated_snapshots_resolve_to_their_model() -> None:
    default = PriceTable.default()
    assert default.price_for("openai", "gpt-4o-mini-2024-07-18") == default.price_for("openai", "gpt-4o-mini")
    assert default.price_for("openai", "gpt-4o-2024-08-06") == default.price_for("openai", "gpt-4o")
    assert default.price_for("anthropic", "claude-sonnet-4-5-20250929") == default.price_for(
        "anthropic", "claude-sonnet-4-5")
    assert default.price_for("anthropic", "claude-sonnet-4-20250514") == default.price_for(
        "anthropic", "claude-sonnet-4")
    assert default.price_for("anthropic", "claude-haiku-4-5@20251001") == default.price_for(
        "anthropic", "claude-haiku-4-5")


def test_longest_known_prefix_wins() -> None:
    t = table({"gpt-4o": price(2.5, 10), "gpt-4o-mini": price(0.15, 0.6)})
    assert t.price_for("openai", "gpt-4o-mini-2024-07-18").input == 0.15  # type: ignore[union-attr]
    assert t.price_for("openai", "gpt-4o-2024-08-06").input == 2.5  # type: ignore[union-attr]


def test_a_different_model_sharing_a_prefix_is_not_priced_as_the_shorter_one() -> None:
    t = table({"gpt-5": price(1.25, 10), "claude-opus-4": price(15, 75), "claude-sonnet-5": price(2, 10),
               "gemini-2.5-flash": price(0.3, 2.5)})
    for other in ("gpt-5.4", "gpt-5-mini", "gpt-5-pro", "claude-opus-4-1", "claude-sonnet-5-5",
                  "gemini-2.5-flash-lite", "gemini-2.5-flash-preview-09-2025"):
        assert t.price_for("openai", other) is None, other
    assert t.price_for("openai", "claude-opus-4-20250514") is not None


def test_unknown_model_or_provider_is_none() -> None:
    default = PriceTable.default()
    assert default.price_for("openai", "gpt-unknown") is None
    assert default.price_for("nope", "gpt-4o-mini") is None
    assert default.price_for("realtime", "llama3") is None


def test_lookup_ignores_case_and_path_prefixes() -> None:
    default = PriceTable.default()
    flash = default.price_for("gemini", "gemini-2.5-flash")
    assert default.price_for("Gemini", "models/gemini-2.5-flash") == flash
    assert default.price_for("gemini", "publishers/google/models/gemini-2.5-flash") == flash
    assert default.price_for("OPENAI", " GPT-4o-mini ") == default.price_for("openai", "gpt-4o-mini")


# --- overrides ---------------------------------------------------------------------------------

def test_override_with_only_realtime_prices_gets_half_price_batch() -> None:
    t = PriceTable.default().with_overrides({"openai": {"my-ft-model": {"input": 0.3, "output": 1.2}}})
    assert t.price_for("openai", "my-ft-model") == ModelPrice(
        input=0.3, cached_input=0.3, output=1.2, batch_input=0.15, batch_cached_input=0.15, batch_output=0.6)
    assert t.price_for("openai", "gpt-4o-mini") == PriceTable.default().price_for("openai", "gpt-4o-mini")
    assert t.taken_on == PriceTable.default().taken_on


def test_override_replaces_a_known_model_and_keeps_explicit_batch_prices() -> None:
    t = PriceTable.default().with_overrides(
        {"anthropic": {"claude-haiku-4-5": price(2, 8, cached_input=0.2, batch_input=1.5, batch_output=6)}})
    assert t.price_for("anthropic", "claude-haiku-4-5") == ModelPrice(2, 0.2, 8, 1.5, 0.1, 6)
    assert PriceTable.default().price_for("anthropic", "claude-haiku-4-5").input == 1.0  # type: ignore[union-attr]


def test_override_adds_a_provider() -> None:
    t = PriceTable.default().with_overrides({"realtime": {"llama3:8b": price(0, 0)}})
    assert t.price_for("realtime", "llama3:8b") == ModelPrice(0, 0, 0, 0, 0, 0)


def test_no_overrides_is_the_same_table() -> None:
    default = PriceTable.default()
    assert default.with_overrides(None) is default and default.with_overrides({}) is default


@pytest.mark.parametrize("bad, message", [
    ({"openai": {"m": {"input": 1}}}, "output price missing"),
    ({"openai": {"m": {"input": 1, "output": 2, "batch_inptu": 1}}}, "unknown price field"),
    ({"openai": {"m": {"input": -1, "output": 2}}}, ">= 0"),
    ({"openai": {"m": {"input": "1", "output": 2}}}, "expected a number"),
    ({"openai": {"m": {"input": True, "output": 2}}}, "expected a number"),
    ({"openai": {"m": {"input": float("nan"), "output": 2}}}, "finite"),
    ({"openai": {"m": 1.0}}, "mapping of prices"),
    ({"openai": ["m"]}, "mapping of model"),
])
def test_bad_overrides_fail_with_the_place_named(bad: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as info:
        PriceTable.default().with_overrides(bad)
    assert "openai" in str(info.value)


def test_from_dict_ignores_metadata() -> None:
    t = PriceTable.from_dict({"taken_on": "2026-01-02", "source_note": "n", "sources": {"x": ["y"]},
                              "providers": {"openai": {"m": price(1, 2, note="checked by hand")}}})
    assert t.taken_on == "2026-01-02" and t.source_note == "n"
    assert t.price_for("openai", "m") == ModelPrice(1, 1, 2, 0.5, 0.5, 1)
    assert t.to_dict()["providers"]["openai"]["m"]["batch_output"] == 1


def test_from_dict_requires_providers() -> None:
    with pytest.raises(InvalidInputError, match="providers"):
        PriceTable.from_dict({"taken_on": "2026-01-02"})
