"""``provider_options``: a task's overrides of its connection's extras, never secrets."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.definitions.connection import Connection

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.hooks.options import check_options, with_options
from airflow_llm_batch.operators.access import ProviderAccess
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
    # refused at once: the SDK's aiohttp transport reports it as APITimeoutError (a subclass of
    # APIConnectionError), the httpx one as APIConnectionError
    # the triggerer's raw poll reports its lean client's ConnectionFailed (aiohttp's
    # ClientConnectorError behind a proxy)
    assert any(name in (event.message or "") for name in ("APIConnectionError", "APITimeoutError",
                                                            "ClientConnectorError", "ConnectionFailed"))


def test_secrets_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="must not carry secrets"):
        check_options({"api_key": "sk-..."})
    with pytest.raises(InvalidInputError, match="JSON values"):
        check_options({"when": object()})
    assert check_options({"vertex_location": "europe-west4"}) == {"vertex_location": "europe-west4"}


@pytest.mark.parametrize(("options", "path"), [
    ({"anthropic_client_kwargs": {"api_key": "sk-ant-nested"}}, "anthropic_client_kwargs.api_key"),
    ({"default_headers": {"Authorization": "Bearer abc"}}, "default_headers.Authorization"),
    ({"hosts": [{"name": "a", "proxy_password": "pw"}]}, "hosts[0].proxy_password"),
])
def test_nested_secret_names_are_refused_when_the_operator_is_built(options: dict[str, Any], path: str) -> None:
    from airflow_llm_batch.operators import LLMBatchOperator

    with pytest.raises(InvalidInputError, match=re.escape(f"must not carry secrets (['{path}'])")):
        LLMBatchOperator(task_id="t", provider="anthropic", model="m", rows=[{"id": 1}], prompt="{{ row.id }}",
                         provider_options=options)


def test_the_worker_and_trigger_side_check_the_options_too(emulator: Any) -> None:
    conn = Connection(conn_id="c", conn_type="openai", password="k", host=emulator.openai_base_url)
    with pytest.raises(InvalidInputError, match="must not carry secrets"):
        with_options(conn, {"default_headers": {"X-Api-Key": "k2"}})


_BUILD = ("from airflow_llm_batch.operators import LLMBatchOperator\n"
          "LLMBatchOperator(task_id='t', model='m', rows=[{'id': 1}], prompt='{{ row.id }}',\n"
          "                 provider_options={'default_headers': {'X-Tenant-Sig': 'v'}})\n"
          "print('built')\n")


def test_an_admins_extra_sensitive_names_are_refused_too(tmp_path: Path) -> None:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    plain = subprocess.run([sys.executable, "-c", _BUILD], env=env, capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0 and "built" in plain.stdout, plain.stderr[-2000:]
    env["AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES"] = "tenant_sig"
    admin = subprocess.run([sys.executable, "-c", _BUILD], env=env, capture_output=True, text=True, timeout=120)
    assert admin.returncode != 0
    assert "InvalidInputError: provider_options must not carry secrets (['default_headers.X-Tenant-Sig'])" in (
        admin.stderr)
