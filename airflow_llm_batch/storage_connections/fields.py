"""Reading an official storage connection's fields, and refusing by name the ones this package cannot honour.

Shared by the per-scheme mappings (gcs.py, s3.py, azure.py). Errors name fields, never their values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from airflow_llm_batch.exceptions import BadConnectionError

FIX = "fix the connection, then clear the task"


def field(extras: Mapping[str, Any], name: str, conn_type: str | None = None) -> Any:
    """Extra ``name``, plain or with the ``extra__{conn_type}__`` prefix the UI form once wrote; None if
    unset or empty."""
    value = extras.get(name)
    if (value is None or value == "") and conn_type:
        value = extras.get(f"extra__{conn_type}__{name}")
    return None if value == "" else value


def plain_names(extras: Mapping[str, Any], conn_type: str | None) -> set[str]:
    """The extras' field names without the ``extra__{conn_type}__`` prefix, set ones only."""
    prefix = f"extra__{conn_type}__" if conn_type else None
    names = set()
    for name, value in extras.items():
        if value is None or value == "":
            continue
        names.add(name[len(prefix):] if prefix and name.startswith(prefix) else name)
    return names


def refuse(conn_id: str, scheme: str, extras: Mapping[str, Any], conn_type: str | None,
           unsupported: Mapping[str, str], honoured: Iterable[str], provider: str) -> None:
    """BadConnectionError for the first extra that is set and not honoured: a known field of the official
    connection that needs ``provider`` (``unsupported``: field -> what it does), or a field this package
    does not know. Never silently dropped."""
    names = plain_names(extras, conn_type)
    for name in sorted(names & set(unsupported)):
        raise BadConnectionError(
            f"connection {conn_id!r}: extra {name!r} ({unsupported[name]}) is not honoured on {scheme}:// paths "
            f"without apache-airflow-providers-{provider}; install it, or remove the field; {FIX}")
    unknown = sorted(names - set(honoured))
    if unknown:
        raise BadConnectionError(
            f"connection {conn_id!r}: extras {unknown} are not fields this package reads for {scheme}:// paths "
            f"(it reads {sorted(honoured)}); remove them or install apache-airflow-providers-{provider}; {FIX}")


def expect_type(conn_id: str, scheme: str, conn_type: str | None, allowed: tuple[str, ...]) -> None:
    if conn_type not in allowed:
        raise BadConnectionError(
            f"connection {conn_id!r} is of type {conn_type!r}; a {scheme}:// path needs one of type "
            f"{' or '.join(repr(t) for t in allowed)}; {FIX}")


def flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)
