"""``[llm_batch] prices_file``: merged over the bundled table with its own date and source, stale prices
warned once, and in real Airflow a price file changes what a run reports it cost."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.operators import effective_prices
from airflow_llm_batch.operators.effective_prices import effective_price, effective_table, load_price_file
from airflow_llm_batch.pipeline.prices import PriceOrigin, PriceTable
from tests.airflow_helpers import run_dag, task_states, xcom

FILE_PRICE = {"input": 1.0, "output": 2.0, "batch_input": 0.5, "batch_output": 1.0}


def price_file(folder: Path, taken_on: str = "2026-11-30", **models: dict[str, float]) -> Path:
    path = folder / "prices.json"
    path.write_text(json.dumps({"taken_on": taken_on, "providers": {"openai": models}}))
    return path


def test_a_price_file_overrides_the_bundled_price_and_keeps_the_others(tmp_path: Path) -> None:
    path = price_file(tmp_path, **{"gpt-4o-mini": FILE_PRICE, "my-model": FILE_PRICE})
    table = effective_table(f"file://{path}")
    assert table.price_for("openai", "gpt-4o-mini-2024-07-18").batch_input == 0.5  # type: ignore[union-attr]
    assert table.origin_of("openai", "gpt-4o-mini") == PriceOrigin("2026-11-30", f"file://{path}")
    assert table.price_for("openai", "my-model") is not None
    bundled = PriceTable.default()
    assert table.price_for("openai", "gpt-4o") == bundled.price_for("openai", "gpt-4o")
    assert table.origin_of("openai", "gpt-4o") == PriceOrigin(bundled.taken_on, "bundled")


def test_the_setting_is_read_and_prices_argument_still_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = price_file(tmp_path, **{"gpt-4o-mini": FILE_PRICE})
    monkeypatch.setenv("AIRFLOW__LLM_BATCH__PRICES_FILE", str(path))
    price, taken_on = effective_price("openai", "gpt-4o-mini")
    assert price is not None and price.input == 1.0 and taken_on == "2026-11-30"
    price, _ = effective_price("openai", "gpt-4o-mini", {"openai": {"gpt-4o-mini": {"input": 3.0, "output": 4.0}}})
    assert price is not None and price.input == 3.0


@pytest.mark.parametrize("content, words", [
    (None, "cannot be read"), ("{not json", "not valid JSON"), ("[1]", "expected a JSON object"),
    (json.dumps({"providers": {"openai": {"m": {"input": -1, "output": 1}}}}), "finite price >= 0"),
])
def test_a_bad_price_file_is_refused_naming_the_file(tmp_path: Path, content: str | None, words: str) -> None:
    path = tmp_path / "prices.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InvalidInputError, match=words) as err:
        load_price_file(str(path))
    assert str(path) in str(err.value)


def test_a_stale_price_is_warned_about_once(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(effective_prices, "_warned", set())
    caplog.set_level(logging.WARNING, logger="airflow_llm_batch")
    old, today = PriceOrigin("2026-01-01", "bundled"), dt.date(2026, 12, 1)
    assert effective_prices.age_in_days("2026-01-01", today) == 334
    assert effective_prices.warn_if_stale(old, provider="openai", model="m", today=today)
    assert not effective_prices.warn_if_stale(old, provider="openai", model="m", today=today)
    fresh = PriceOrigin("2026-11-01", "bundled")
    assert not effective_prices.warn_if_stale(fresh, provider="openai", model="m", today=today)
    assert caplog.text.count("may be stale") == 1 and "334 days ago" in caplog.text


@pytest.mark.usefixtures("emulator", "airflow_db")
def test_a_run_reports_its_cost_at_the_price_files_prices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = price_file(tmp_path, taken_on="2026-11-29", **{"gpt-4o-mini": FILE_PRICE})
    monkeypatch.setenv("AIRFLOW__LLM_BATCH__PRICES_FILE", f"file://{path}")
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"id": f"p{i}", "text": f"price row {i}"}) + "\n" for i in range(20)))
    dag_run = run_dag("llmb_operator", {"rows": f"file://{rows}", "destination": f"file://{tmp_path}/out.jsonl",
                                        "workspace": f"file://{tmp_path}/ws"})
    assert task_states(dag_run) == {"batch": "success"}
    summary: dict[str, Any] = xcom(dag_run, "batch")
    usage, cost = summary["usage"], summary["cost"]
    expected = (usage["input_tokens"] * 0.5 + usage["output_tokens"] * 1.0) / 1e6
    assert cost["taken_on"] == "2026-11-29"
    assert cost["batch_usd"] == pytest.approx(expected)
    assert cost["realtime_usd"] == pytest.approx((usage["input_tokens"] * 1.0 + usage["output_tokens"] * 2.0) / 1e6)
