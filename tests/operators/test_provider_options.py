"""``provider_options``: a task's overrides of its connection's extras, never secrets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.hooks.options import check_options
from airflow_llm_batch.operators.run_context import ProviderAccess
from airflow_llm_batch.triggers.batch import LLMBatchTrigger
from airflow_llm_batch.triggers.events import WaitEvent, WaitOutcome


def test_options_override_extras_on_the_worker_and_in_the_trigger(emulator: Any, monkeypatch: pytest.MonkeyPatch
                                                                   ) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_OPTS_EMULATOR", json.dumps(
        {"conn_type": "openai", "password": "k", "host": emulator.openai_base_url, "extra": {"max_retries": 1}}))
    access = ProviderAccess.resolve("openai", "opts_emulator", {"max_retries": 7})
    assert access.conn.extra_dejson == {"max_retries": 7}
    assert access.hook.backend_from_connection(access.conn).client.max_retries == 7  # type: ignore[attr-defined]
    plain = ProviderAccess.resolve("openai", "opts_emulator")
    assert plain.hook.backend_from_connection(plain.conn).client.max_retries == 1  # type: ignore[attr-defined]
    _, kwargs = LLMBatchTrigger(provider="openai", conn_id="opts_emulator", batch_ids=["b"],
                                provider_options=access.options).serialize()
    assert kwargs["provider_options"] == {"max_retries": 7} and "k" not in json.dumps(kwargs).split('"')


async def test_trigger_builds_its_client_with_the_options(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_OPTS_EMULATOR", json.dumps(
        {"conn_type": "openai", "password": "k", "host": "http://127.0.0.1:9/v1"}))  # nothing listens there
    trigger = LLMBatchTrigger(provider="openai", conn_id="opts_emulator", batch_ids=["batch_missing"],
                              poll_interval=0.01, provider_options={"max_retries": 0})
    gen = trigger.run()
    event = WaitEvent.from_payload((await gen.asend(None)).payload)
    await gen.aclose()
    assert event.outcome == WaitOutcome.ERROR  # polled the dead host: the option did not change the host
    assert "Connection" in (event.message or "")


def test_secrets_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="must not carry secrets"):
        check_options({"api_key": "sk-..."})
    with pytest.raises(InvalidInputError, match="JSON values"):
        check_options({"when": object()})
    assert check_options({"vertex_location": "europe-west4"}) == {"vertex_location": "europe-west4"}
