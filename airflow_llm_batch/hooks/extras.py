"""Reading a connection's extras: a value that cannot work is a :class:`BadConnectionError` naming the
connection and the field (never the value: a misplaced key must not reach a log), which the
operators fail without retries.

Example: ``number_extra("openai_default", "timeout", extra.get("timeout"), float)``
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from airflow_llm_batch.exceptions import BadConnectionError

N = TypeVar("N", int, float)


def number_extra(conn_id: str, name: str, value: Any, kind: Callable[[Any], N]) -> N | None:
    """``value`` as an int or float; None when unset; BadConnectionError when it is not a number."""
    if value is None or value == "":
        return None
    try:
        return kind(value)
    except (TypeError, ValueError, OverflowError):
        raise BadConnectionError(f"connection {conn_id!r}: extra {name!r} must be a number, not a "
                                 f"{type(value).__name__}; fix the connection, then clear the task") from None


def mapping_extra(conn_id: str, name: str, value: Any) -> dict[str, Any]:
    """``value`` as a dict (client arguments, HTTP headers...); {} when unset; BadConnectionError otherwise."""
    if not value:
        return {}
    if not isinstance(value, Mapping):
        raise BadConnectionError(f"connection {conn_id!r}: extra {name!r} must be a JSON object, not a "
                                 f"{type(value).__name__}; fix the connection, then clear the task")
    return {str(k): v for k, v in value.items()}
