"""Per-task provider options: connection extras overridden by the task (``provider_options=``).

They travel in trigger kwargs and XCom handles, which Airflow stores in its database, so anything
that looks like a secret is refused: secrets come from connections only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from airflow.sdk.definitions.connection import Connection

from airflow_llm_batch.exceptions import InvalidInputError

SECRET_WORDS = ("key", "secret", "password", "token", "credential", "keyfile")


def check_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """A JSON-safe copy of ``options``; InvalidInputError for a secret-looking name or a non-JSON value."""
    if not options:
        return {}
    secret = sorted(k for k in options if any(word in k.lower() for word in SECRET_WORDS))
    if secret:
        raise InvalidInputError(f"provider_options must not carry secrets ({secret}): put them in the "
                                f"Airflow connection instead")
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
                      extra=json.dumps({**conn.extra_dejson, **options}))
