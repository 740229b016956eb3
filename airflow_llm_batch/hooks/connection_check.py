"""The connection form's Test button: run one cheap authenticated call and say, in one line, what happened.

Used by every hook's ``test_connection`` so the verdicts read alike. A refused key is named as such
(the SDK's own message may echo part of the key, so it is not repeated); other failures keep the
exception type and a short message.
"""

from __future__ import annotations

from collections.abc import Callable

from airflow_llm_batch.exceptions import BadConnectionError

_REFUSED = frozenset({401, 403})
_MAX_MESSAGE = 300


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an SDK error carries (openai/anthropic: ``status_code``; google-genai: ``code``)."""
    for name in ("status_code", "code"):
        value = getattr(exc, name, None)
        if isinstance(value, int):
            return value
    return None


def describe_failure(conn_id: str, exc: BaseException) -> str:
    """One line for the UI: what failed and what to change on connection ``conn_id``."""
    if isinstance(exc, BadConnectionError):
        return str(exc)
    status = status_of(exc)
    if status in _REFUSED:
        return (f"connection {conn_id!r}: the service refused the credentials (HTTP {status}): check the API "
                f"key (password) and, for a proxy or emulator, the host")
    text = " ".join(str(exc).split())[:_MAX_MESSAGE]
    where = f" (HTTP {status})" if status else ""
    return f"connection {conn_id!r}: {type(exc).__name__}{where}: {text}"


def check_connection(conn_id: str, probe: Callable[[], str]) -> tuple[bool, str]:
    """``(True, what the probe saw)`` or ``(False, why not)``; never raises (Airflow shows the message)."""
    try:
        return True, probe()
    except Exception as exc:  # the verdict is the product: every failure becomes a message
        return False, describe_failure(conn_id, exc)
