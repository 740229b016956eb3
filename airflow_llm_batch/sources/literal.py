"""Checks of rows written in the DAG file itself (a Python list), done when the DAG is parsed.

Airflow stores a task's rendered template fields as strict JSON before the task runs: a NaN or an
infinity in a literal row (from pandas, often) fails every try with "Out of range float values are
not JSON compliant", and no provider accepts it in a request either.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from airflow_llm_batch.exceptions import InvalidInputError

_MAX_LISTED = 10


def non_json_values(value: Any, where: str) -> Iterator[str]:
    """Where ``value`` holds a NaN or an infinity (``where`` names the value)."""
    if isinstance(value, float) and not math.isfinite(value):
        yield f"{where} is {value!r}"
    elif isinstance(value, Mapping):
        for name, item in value.items():
            yield from non_json_values(item, f"{where}, column {name!r}" if "column" not in where
                                       else f"{where}.{name}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from non_json_values(item, f"{where}[{index}]")


def check_json_rows(rows: Sequence[Any]) -> None:
    """InvalidInputError naming the rows and columns that hold NaN or infinity."""
    problems: list[str] = []
    for row_no, row in enumerate(rows):
        problems.extend(non_json_values(row, f"row {row_no}"))
        if len(problems) >= _MAX_LISTED:
            break
    if problems:
        raise InvalidInputError(f"rows hold values JSON cannot carry ({'; '.join(problems[:_MAX_LISTED])}): "
                                f"replace NaN/inf with None (e.g. df.replace({{float('nan'): None}})) or a "
                                f"string; nothing was submitted")
