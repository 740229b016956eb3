"""The one mapping from a failed real-time HTTP call to the retry policy's codes and Retry-After hint."""

from __future__ import annotations

import pytest

from airflow_llm_batch.backends.realtime_wire import call_failed, error_field, neutral_code, retry_after


@pytest.mark.parametrize(("headers", "seconds"), [
    ({"retry-after-ms": "250", "retry-after": "9"}, 0.25), ({"retry-after": "2"}, 2.0),
    ({"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"}, None), ({}, None), (None, None)])
def test_retry_after_prefers_milliseconds(headers: dict[str, str] | None, seconds: float | None) -> None:
    assert retry_after(headers) == seconds


@pytest.mark.parametrize(("status", "code", "neutral"), [
    (429, "insufficient_quota", "insufficient_quota"), (429, "rate_limit_error", "rate_limit_exceeded"),
    (401, None, "authentication_error"), (401, "invalid_api_key", "invalid_api_key"),
    (403, "permission_error", "permission_error"), (529, "overloaded_error", "overloaded_error"),
    (502, None, "server_error"), (404, "model_not_found", "model_not_found"), (400, None, "invalid_request_error")])
def test_neutral_code_speaks_the_policy_vocabulary(status: int, code: str | None, neutral: str) -> None:
    assert neutral_code(status, code) == neutral


def test_the_hint_is_kept_for_refusals_only() -> None:
    assert call_failed(429, None, "slow down", {"retry-after": "3"}).retry_after == 3.0
    assert call_failed(400, None, "bad", {"retry-after": "3"}).retry_after is None


def test_error_field_reads_wrapped_and_flat_bodies() -> None:
    assert error_field({"error": {"type": "x", "code": None}}, "code", "type") == "x"
    assert error_field({"code": "y"}, "code") == "y" and error_field("not json", "code") is None
