"""The scalar converters table behind ``coerce``: each column type keeps what fits and says UNFIT otherwise."""

from __future__ import annotations

from airflow_llm_batch.google.bq_schema import BOOL, FLOAT64, INT64, SCALARS, STRING, UNFIT


def test_each_scalar_column_keeps_what_fits_and_refuses_the_rest() -> None:
    assert [SCALARS[STRING](v) for v in ("x", 3, True, {"b": 1, "a": [1]})] == ["x", "3", "true",
                                                                             '{"a": [1], "b": 1}']
    assert [SCALARS[INT64](v) for v in (3, 3.0, 2**63, 2.5, True, "3")] == [3, 3, UNFIT, UNFIT, UNFIT, UNFIT]
    assert [SCALARS[FLOAT64](v) for v in (2, 2.5, False, "2")] == [2.0, 2.5, UNFIT, UNFIT]
    assert [SCALARS[BOOL](v) for v in (True, 1, "yes")] == [True, UNFIT, UNFIT]
