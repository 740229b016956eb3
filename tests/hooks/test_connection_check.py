"""connection_check: the Test button's verdict, one line per failure kind, never an exception."""

from __future__ import annotations

from airflow_llm_batch.exceptions import BadConnectionError
from airflow_llm_batch.hooks.connection_check import check_connection, describe_failure, status_of


class _Refused(Exception):
    status_code = 401


class _GenaiError(Exception):
    code = 403


def test_status_is_read_from_either_sdk_attribute() -> None:
    assert status_of(_Refused("x")) == 401 and status_of(_GenaiError("x")) == 403
    assert status_of(RuntimeError("x")) is None


def test_a_refused_key_is_named_without_repeating_the_sdks_message() -> None:
    message = describe_failure("c1", _Refused("Incorrect API key provided: sk-abc123"))
    assert "refused the credentials (HTTP 401)" in message and "'c1'" in message
    assert "sk-abc123" not in message


def test_other_failures_keep_type_and_a_short_message() -> None:
    assert describe_failure("c1", BadConnectionError("connection 'c1' has no API key")) == \
        "connection 'c1' has no API key"
    long = describe_failure("c1", ConnectionError("down\n" + "x" * 1000))
    assert long.startswith("connection 'c1': ConnectionError: down x") and len(long) < 400


def test_check_connection_returns_a_verdict_and_never_raises() -> None:
    assert check_connection("c1", lambda: "fine") == (True, "fine")

    def boom() -> str:
        raise _Refused("no")

    ok, message = check_connection("c1", boom)
    assert not ok and "HTTP 401" in message
