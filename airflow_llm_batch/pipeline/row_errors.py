"""What is wrong with the input rows, gathered over the whole pass so one error names every problem."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from airflow_llm_batch.exceptions import InvalidInputError

#: how many problems the error lists (all of them are counted)
MAX_LISTED = 20


class RowErrors:
    """Collects bad rows during preparation; :meth:`check` raises one InvalidInputError for all.

    Example::

        errors = RowErrors(key_column="id")
        errors.add(3, {"id": "a"}, RowError("prompt renders empty"))
        errors.check(total=10)   # InvalidInputError: 1 of 10 rows are invalid (1 x prompt renders empty)...
    """

    def __init__(self, key_column: str | None) -> None:
        self.key_column = key_column
        self.listed: list[str] = []
        self.reasons: Counter[str] = Counter()
        self.duplicate_ids = 0

    def __bool__(self) -> bool:
        return bool(self.reasons)

    def add(self, row_no: int, row: Any, error: Exception) -> None:
        self.reasons[str(error).split(":")[0]] += 1
        self._list(f"row {row_no}{self._key_note(row)}: {error}")

    def add_duplicates(self, count: int, duplicates: list[tuple[list[str], list[int]]]) -> None:
        """Record ``count`` custom_ids used by several rows; ``duplicates`` lists the first ones."""
        for keys, row_nos in duplicates:
            self._list(_duplicate_note(keys, row_nos))
        if count:
            self.reasons["duplicate key"] += count
            self.duplicate_ids += count

    def check(self, total: int) -> None:
        """Raise InvalidInputError when any row is bad, or when there were no rows at all."""
        if self:
            counted = "; ".join(f"{n} x {reason}" for reason, n in self.reasons.most_common())
            listing = "\n  ".join(self.listed)
            hint = ""
            if self.key_column is None and self.duplicate_ids:
                hint = " (no key column is set: identical rows get the same id; set `key=`)"
            raise InvalidInputError(
                f"{sum(self.reasons.values())} of {total} rows are invalid ({counted}){hint}; nothing was "
                f"submitted.\n  {listing}"
            )
        if total == 0:
            raise InvalidInputError("no rows to process: the input is empty; nothing was submitted.")

    def _list(self, message: str) -> None:
        if len(self.listed) < MAX_LISTED:
            self.listed.append(message)

    def _key_note(self, row: Any) -> str:
        if self.key_column and isinstance(row, Mapping) and row.get(self.key_column) is not None:
            return f" (key {str(row[self.key_column])!r})"
        return ""


def _duplicate_note(keys: list[str], row_nos: list[int]) -> str:
    rows = ", ".join(map(str, row_nos))
    if len(keys) == 1:
        return f"duplicate key {keys[0]!r} on rows {rows}"
    return (f"keys {', '.join(map(repr, keys))} (rows {rows}) map to the same provider custom_id (the "
            f"provider's id rules replace keys they do not accept): make one of them different")
