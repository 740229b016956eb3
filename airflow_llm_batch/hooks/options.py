"""Per-task provider options: connection extras overridden by the task (``provider_options=``).

They travel in trigger kwargs and XCom handles, which Airflow stores in its database, so anything
that looks like a secret is refused, at any depth (``{"default_headers": {"Authorization": ...}}``
too): secrets come from connections only. A name is a secret when Airflow would mask its value
(``should_hide_value_for_key``: the built-in names plus an admin's ``[core] sensitive_var_conn_names``)
or when it contains one of :data:`SECRET_WORDS`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from airflow.sdk.definitions.connection import Connection

from airflow_llm_batch.exceptions import InvalidInputError

SECRET_WORDS = ("key", "secret", "password", "token", "credential", "keyfile", "authorization", "cookie")


def is_secret_name(name: str) -> bool:
    """Whether a value stored under ``name`` must be treated as a secret."""
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS) or _airflow_hides(name)


def _airflow_hides(name: str) -> bool:
    try:
        from airflow.sdk._shared.secrets_masker import should_hide_value_for_key
    except ImportError:  # pragma: no cover - older layouts keep it in core
        from airflow._shared.secrets_masker import should_hide_value_for_key
    return bool(should_hide_value_for_key(name))  # type: ignore[no-untyped-call]


def secret_paths(value: Any, path: str = "") -> Iterator[str]:
    """The dotted paths of every secret-looking name in ``value`` (mappings inside lists included)."""
    if isinstance(value, Mapping):
        for name, item in value.items():
            where = f"{path}.{name}" if path else str(name)
            if is_secret_name(str(name)):
                yield where
            yield from secret_paths(item, where)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from secret_paths(item, f"{path}[{index}]")


def check_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """A JSON-safe copy of ``options``; InvalidInputError for a secret-looking name or a non-JSON value."""
    if not options:
        return {}
    secret = sorted(secret_paths(options))
    if secret:
        raise InvalidInputError(f"provider_options must not carry secrets ({secret}): they would be stored "
                                f"in Airflow's database with the trigger and the task's XCom. Put them in "
                                f"the Airflow connection (password or extras) instead")
    try:
        return dict(json.loads(json.dumps(dict(options))))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"provider_options must be JSON values: {exc}") from exc


def with_options(conn: Connection, options: Mapping[str, Any] | None) -> Connection:
    """``conn`` with its extras overridden by ``options`` (the original is left untouched)."""
    if not options:
        return conn
    return Connection(conn_id=conn.conn_id, conn_type=conn.conn_type, host=conn.host, login=conn.login,
                      password=conn.password, schema=conn.schema, port=conn.port,
                      extra=json.dumps({**conn.extra_dejson, **check_options(options)}))
