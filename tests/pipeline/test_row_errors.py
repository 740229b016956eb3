"""The error accumulator of the preparation pass (row_errors.RowErrors)."""

from __future__ import annotations

import pytest

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.pipeline.render import RowError
from airflow_llm_batch.pipeline.row_errors import MAX_LISTED, RowErrors


def test_no_errors_and_some_rows_pass() -> None:
    errors = RowErrors("id")
    errors.add_duplicates(0, [])
    assert not errors
    errors.check(total=3)


def test_no_rows_at_all_is_an_error() -> None:
    with pytest.raises(InvalidInputError, match="input is empty"):
        RowErrors("id").check(total=0)


def test_every_problem_is_counted_and_the_first_ones_listed() -> None:
    errors = RowErrors("id")
    for n in range(MAX_LISTED + 5):
        errors.add(n, {"id": f"r{n}"}, RowError("prompt renders empty"))
    errors.add(99, "not a mapping", RowError("row is not a mapping: str"))
    errors.add_duplicates(2, [(["a"], [1, 4]), (["x y", "x_y"], [2, 3])])
    with pytest.raises(InvalidInputError) as info:
        errors.check(total=200)
    message = str(info.value)
    assert message.startswith(f"{MAX_LISTED + 8} of 200 rows are invalid ({MAX_LISTED + 5} x prompt renders "
                              f"empty; 2 x duplicate key; 1 x row is not a mapping); nothing was submitted.")
    assert "row 0 (key 'r0'): prompt renders empty" in message
    assert message.count("\n  ") == MAX_LISTED and "row 99" not in message and "duplicate key 'a'" not in message


def test_duplicates_without_a_key_column_hint_at_key() -> None:
    errors = RowErrors(None)
    errors.add_duplicates(1, [(["k"], [0, 1])])
    with pytest.raises(InvalidInputError) as info:
        errors.check(total=2)
    assert "no key column is set" in str(info.value) and "duplicate key 'k' on rows 0, 1" in str(info.value)
    errors = RowErrors(None)
    errors.add_duplicates(1, [(["x y", "x_y"], [2, 3])])
    with pytest.raises(InvalidInputError, match="map to the same provider custom_id"):
        errors.check(total=4)
