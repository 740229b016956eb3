"""Every hook: ``Connection.get_hook()`` builds it (conn_name_attr matches its constructor), and its
``test_connection`` makes one authenticated call: it succeeds against the emulator and fails with a
clear message for a refused key, as the connection form's Test button shows it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.models.connection import Connection

from airflow_llm_batch.emulator import Emulator, EmulatorConfig
from airflow_llm_batch.hooks import PROVIDER_HOOKS, LLMBatchHook, hook_class

#: the key the checking emulator accepts; also the placeholder token the Vertex hook sends to an emulator
GOOD_KEY = "emulator"


@pytest.fixture(scope="module")
def keyed_emulator() -> Iterator[Emulator]:
    """An emulator that refuses any key but GOOD_KEY with HTTP 401."""
    emu = Emulator(EmulatorConfig(host="127.0.0.1", port=0, api_key=GOOD_KEY))
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


def connection(provider: str, emu: Emulator, key: str) -> dict[str, Any]:
    """The Airflow connection (as JSON fields) that points ``provider``'s hook at the emulator."""
    conn_type = hook_class(provider).conn_type
    if provider == "vertex":
        return {"conn_type": conn_type, "extra": {"project": "p1", "vertex_endpoint": emu.url}}
    host = {"openai": emu.openai_base_url, "openai_compatible": emu.openai_base_url,
            "anthropic": emu.anthropic_base_url}.get(provider, emu.url)
    return {"conn_type": conn_type, "password": key, "host": host}


def stats(emu: Emulator, provider: str) -> int:
    return int(emu.stats()[provider]["api_requests"])


@pytest.mark.parametrize("provider", sorted(PROVIDER_HOOKS))
def test_the_connection_id_attribute_is_a_constructor_argument(provider: str) -> None:
    cls = hook_class(provider)
    hook = cls(**{cls.conn_name_attr: "my_conn"})
    assert hook.conn_id == "my_conn"


@pytest.mark.parametrize("conn_type", ["llm_batch_azure_openai", "llm_batch_gemini"])
def test_get_hook_builds_our_hook_for_each_connection_type_we_register(conn_type: str) -> None:
    hook = Connection(conn_id="mine", conn_type=conn_type).get_hook()
    assert isinstance(hook, LLMBatchHook) and hook.conn_type == conn_type and hook.conn_id == "mine"


@pytest.mark.parametrize("provider", sorted(PROVIDER_HOOKS))
def test_test_connection_makes_one_authenticated_call(provider: str, keyed_emulator: Emulator,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    fields = connection(provider, keyed_emulator, GOOD_KEY)
    monkeypatch.setenv("AIRFLOW_CONN_PROBE", json.dumps(fields))
    counted = "openai" if provider in ("azure_openai", "openai_compatible") else provider
    before = stats(keyed_emulator, counted)
    ok, message = hook_class(provider)("probe").test_connection()
    assert ok, message
    assert message.startswith("authenticated") and GOOD_KEY not in message
    assert stats(keyed_emulator, counted) == before + 1


@pytest.mark.parametrize("provider", ["anthropic", "azure_openai", "gemini", "openai", "openai_compatible"])
def test_a_refused_key_fails_with_a_clear_message(provider: str, keyed_emulator: Emulator,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_PROBE", json.dumps(connection(provider, keyed_emulator, "wrong-key")))
    ok, message = hook_class(provider)("probe").test_connection()
    assert not ok
    assert message.startswith("connection 'probe': the service refused the credentials (HTTP 401)")
    assert "wrong-key" not in message


def test_a_connection_without_key_fails_before_any_call(keyed_emulator: Emulator,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    fields = {**connection("gemini", keyed_emulator, GOOD_KEY), "password": None}
    monkeypatch.setenv("AIRFLOW_CONN_PROBE", json.dumps(fields))
    before = stats(keyed_emulator, "gemini")
    assert hook_class("gemini")("probe").test_connection() == (
        False, "connection 'probe' has no API key: set its password")
    assert stats(keyed_emulator, "gemini") == before


@pytest.mark.parametrize("provider", ["azure_openai", "gemini"])
def test_the_test_button_path_reaches_our_hook(provider: str, emulator: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """What the UI API does: export the form's connection under a transient id, then test_connection()."""
    fields = connection(provider, emulator, "any-key")
    monkeypatch.setenv("AIRFLOW_CONN_FORM", json.dumps(fields))
    conn = Connection(conn_id="form", conn_type=fields["conn_type"], host=fields["host"], password="any-key")
    ok, message = conn.test_connection()
    assert ok and message.startswith("authenticated"), message
