"""Unit tests of the shared integer query parameter reading (:mod:`emulator.query_params`)."""

from __future__ import annotations

import pytest

from airflow_llm_batch.emulator.query_params import clamped, int_param


class Refused(Exception):
    pass


def test_int_param_reads_integers_and_defaults_when_absent() -> None:
    assert int_param("42", 7, Refused) == 42
    assert int_param("-3", 7, Refused) == -3  # the range is each provider's rule
    assert int_param(None, 7, Refused) == 7


@pytest.mark.parametrize("raw", ["", "ten", "1.5"])
def test_int_param_raises_the_callers_error_for_other_text(raw: str) -> None:
    with pytest.raises(Refused) as caught:
        int_param(raw, 7, Refused)
    assert isinstance(caught.value.__cause__, ValueError)


def test_clamped_brings_a_value_into_range() -> None:
    assert [clamped(v, 1, 100) for v in (-5, 0, 1, 50, 100, 101)] == [1, 1, 1, 50, 100, 100]
