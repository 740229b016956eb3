"""Reading a connection's extras: a value that cannot work is a :class:`BadConnectionError` naming the
connection and the field (never the value: a misplaced key must not reach a log), which the
operators fail without retries.

Example: ``number_extra("openai_default", "timeout", extra.get("timeout"), float)``
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Mapping
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


def client_kwargs_extra(conn_id: str, name: str, value: Any, client: Callable[..., Any],
                        reserved: frozenset[str] = frozenset({"http_client"})) -> dict[str, Any]:
    """An official provider's ``*_client_kwargs`` extra, checked against the SDK client's arguments:
    a name the client does not take, or one this package sets itself, is a BadConnectionError (never
    dropped silently, never a TypeError deep in a task)."""
    kwargs = mapping_extra(conn_id, name, value)
    accepted = set(inspect.signature(client).parameters) - reserved
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise BadConnectionError(f"connection {conn_id!r}: extra {name!r} has {unknown}, which this package "
                                 f"cannot pass to {getattr(client, '__name__', 'the client')}; accepted: "
                                 f"{sorted(accepted)}")
    for number, kind in (("timeout", float), ("max_retries", int)):
        if number in kwargs:
            kwargs[number] = number_extra(conn_id, f"{name}.{number}", kwargs[number], kind)
    return kwargs


def refuse_unknown_extras(conn_id: str, extra: Mapping[str, Any], accepted: Collection[str], hint: str = "") -> None:
    """BadConnectionError naming every set extra outside ``accepted`` (empty values, as forms store them,
    are let through): a field this connection type does not read must not be dropped silently."""
    unknown = sorted(name for name, value in extra.items() if name not in accepted and value not in (None, ""))
    if unknown:
        raise BadConnectionError(f"connection {conn_id!r}: extra {unknown} is not read by this connection type "
                                 f"(accepted: {sorted(accepted)}){hint}; remove it, then clear the task")


def batch_options_extra(conn: Any) -> dict[str, Any]:
    """The task's ``batch_options`` (operators/batch_options.py), which reach the hook as a connection
    extra of that name through the task's provider options."""
    return mapping_extra(conn.conn_id, "batch_options", conn.extra_dejson.get("batch_options"))
