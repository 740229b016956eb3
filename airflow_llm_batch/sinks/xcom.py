"""Results through XCom: only for small runs, checked before anything is submitted."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.pipeline.types import ResultRow

DEFAULT_MAX_XCOM_ROWS = 1_000


def check_fits(total_rows: int, max_rows: int) -> None:
    if total_rows > max_rows:
        raise InvalidInputError(
            f"destination=None returns every result through XCom, which is meant for small runs: "
            f"{total_rows:,} rows > xcom_max_rows={max_rows:,}. Set destination='file:///...' (or gs://, "
            f"s3://) or raise xcom_max_rows. Nothing was submitted."
        )


def as_xcom(rows: Iterable[ResultRow]) -> list[dict[str, Any]]:
    return [row.to_dict() for row in rows]
