"""What one row of a BigQuery destination stands for in each landing mode, and the SQL that keeps it so.

Every landed row carries who produced it: ``dag_id, task_id, run_id, map_index`` (the *landing
identity*: one task run, or one mapped instance of it). The modes differ in which of those columns,
besides ``key``, tell two rows apart (``row_scope``):

* ``merge`` (default): one row per ``key`` for the task (``dag_id, task_id``). Each landing upserts
  its rows in one atomic ``MERGE``: the latest run's answer wins and the row records that run's
  ``run_id``/``map_index``; keys the run did not have keep their last answer. A nightly DAG over
  the same catalog therefore keeps one row per key, not one copy per night.
* ``history``: one row per ``key`` per landing (task run and map index). Each run adds its own copy;
  re-landing the same run (a retry, a cleared task) replaces that copy, never adds a second one.
* ``append``: like ``history``, but ``DELETE`` this landing's rows then load straight into the table:
  no staging table, not atomic (readers briefly miss the run's rows).
* ``replace_partition``: the day's partition is exactly this landing's rows (see the sink docstring).

In every staged mode, the rows of *this* landing that are no longer in its results are deleted, and
nothing else: mapped siblings (other ``map_index``) and other runs are never touched.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from airflow_llm_batch.google.bq_schema import Column
from airflow_llm_batch.sinks.base import LandingContext

#: the columns that identify one landing (a task run, or one mapped instance of it)
IDENTITY = ("dag_id", "task_id", "run_id", "map_index")


@dataclass(frozen=True)
class LandingMode:
    """One way of landing: what a row stands for and how the rows get there.

    Example::

        >>> MODES["merge"].row_scope
        ('dag_id', 'task_id')
    """

    name: str
    #: columns besides ``key`` that tell two rows apart: the table keeps one row per (key, *row_scope)
    row_scope: tuple[str, ...]
    #: load into a staging table and MERGE (atomic), else DELETE this landing's rows and load directly
    staged: bool = True
    #: the landing replaces a whole day partition instead of matching rows
    partitioned: bool = False


MODES: dict[str, LandingMode] = {m.name: m for m in (
    LandingMode("merge", ("dag_id", "task_id")),
    LandingMode("history", IDENTITY),
    LandingMode("append", IDENTITY, staged=False),
    LandingMode("replace_partition", (), partitioned=True),
)}
DEFAULT_MODE = "merge"


def landing_identity(context: LandingContext) -> dict[str, Any]:
    """The column values that identify one landing (``map_index`` -1 when the task is not mapped)."""
    return {"dag_id": context.dag_id, "task_id": context.task_id, "run_id": context.run_id,
            "map_index": -1 if context.map_index is None else int(context.map_index)}


def delete_landing_sql(target: str, context: LandingContext) -> tuple[str, dict[str, Any]]:
    """``DELETE`` every row of this landing (the ``append`` mode's first step)."""
    identity = landing_identity(context)
    where = " AND ".join(f"`{k}` = @{k}" for k in identity)
    return f"DELETE FROM `{target}` WHERE {where}", identity


def merge_sql(target: str, staging: str, columns: Sequence[Column], context: LandingContext, mode: LandingMode,
              *, partition_field: str = "", partition_date: dt.date | None = None) -> tuple[str, dict[str, Any]]:
    """One ``MERGE`` moving the staged rows into ``target`` as ``mode`` says; returns (sql, parameters).

    Written without ``INSERT ROW`` (not every BigQuery-compatible engine has it)."""
    names = [f"`{c.name}`" for c in columns]
    insert = (f"WHEN NOT MATCHED BY TARGET THEN INSERT ({', '.join(names)}) "
              f"VALUES ({', '.join('S.' + n for n in names)})")
    if mode.partitioned:
        if partition_date is None:
            raise ValueError("a partitioned landing needs partition_date")
        field = f"`{partition_field}`"
        return (f"MERGE `{target}` T USING `{staging}` S ON FALSE "
                f"WHEN NOT MATCHED BY SOURCE AND T.{field} = @partition_date THEN DELETE {insert}",
                {"partition_date": partition_date})
    matched_on = ("key", *mode.row_scope)
    on = " AND ".join(f"T.`{k}` = S.`{k}`" for k in matched_on)
    updates = ", ".join(f"{n} = S.{n}" for n, c in zip(names, columns, strict=True) if c.name not in matched_on)
    identity = landing_identity(context)
    mine = " AND ".join(f"T.`{k}` = @{k}" for k in identity)
    return (f"MERGE `{target}` T USING `{staging}` S ON {on} "
            f"WHEN MATCHED THEN UPDATE SET {updates} {insert} "
            f"WHEN NOT MATCHED BY SOURCE AND {mine} THEN DELETE", identity)


__all__ = ["DEFAULT_MODE", "IDENTITY", "MODES", "LandingMode", "delete_landing_sql", "landing_identity",
           "merge_sql"]
