"""End-to-end (issue 14, item 3): the connection form in a real `airflow standalone`, through the same UI
and REST API calls the web UI makes.

* The form metadata (GET /ui/connections/hook_meta, what the "Add Connection" form is drawn from) lists
  our own connection types with the labels, placeholders, hidden fields and extra fields declared in
  ``get_provider_info``; the official providers' types (``openai``, ``anthropic``,
  ``google_cloud_platform``) are not claimed by our hooks.
* The Test button (POST /api/v2/connections/test, enabled by ``[core] test_connection``) runs our
  hook's ``test_connection`` in the API server: true against the emulator with the right key, false
  with a clear message (and no key in it) with a wrong one, and the emulator saw exactly one request
  per press.

One standalone serves the whole module (its start-up is the slow part).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_llm_batch.emulator import Emulator, EmulatorConfig
from tests.e2e.standalone import AirflowStandalone, log

#: the only key the emulator accepts (any other is answered 401)
GOOD_KEY = "e2e-good-key"
WRONG_KEY = "e2e-wrong-key-0123"
#: our connection types: conn_type -> (provider counted by the emulator, host label, extra fields)
OUR_TYPES = {
    "llm_batch_gemini": ("gemini", "Base URL", {"api_version", "timeout", "inline_max_bytes"}),
    "llm_batch_azure_openai": ("openai", "Azure OpenAI Endpoint", {"api_version", "timeout", "max_retries"}),
}


@pytest.fixture(scope="module")
def keyed_emulator() -> Iterator[Emulator]:
    emu = Emulator(EmulatorConfig(host="127.0.0.1", port=0, api_key=GOOD_KEY))
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[AirflowStandalone]:
    """A healthy standalone with no DAGs and the Test button enabled; stopped (every process) at the end."""
    t0 = time.monotonic()
    instance = AirflowStandalone(tmp_path_factory.mktemp("conn-ui") / "airflow-home", [],
                                 extra_env={"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"})
    failed_before = request.session.testsfailed
    try:
        instance.start()
        instance.wait_healthy(timeout=240)
        log("standalone healthy", t0)
        yield instance
    finally:
        if request.session.testsfailed > failed_before:
            print(instance.diagnostics(80), flush=True)
        instance.stop()
        log("stopped every process", t0)


def hook_meta(airflow: AirflowStandalone) -> dict[str, dict[str, Any]]:
    """The connection form metadata the UI reads, by connection type."""
    return {meta["connection_type"]: meta for meta in airflow.get("/ui/connections/hook_meta")}


def test_the_connection_form_metadata_lists_our_types_as_declared(standalone: AirflowStandalone) -> None:
    forms = hook_meta(standalone)
    for conn_type, (_, host_label, extras) in OUR_TYPES.items():
        form = forms[conn_type]
        assert form["hook_class_name"].startswith("airflow_llm_batch.hooks.")
        assert "airflow-llm-batch" in form["hook_name"]
        fields = form["standard_fields"]
        assert fields["password"]["title"] == "API Key" and fields["password"]["placeholder"]
        assert fields["host"]["title"] == host_label and fields["host"]["placeholder"]
        assert fields["login"]["hidden"] and fields["port"]["hidden"]
        assert set(form["extra_fields"]) == extras
        for spec in form["extra_fields"].values():
            assert spec["schema"]["title"]  # each extra field has its label
    assert forms["llm_batch_azure_openai"]["extra_fields"]["api_version"]["value"] == "2024-10-21"
    for official in ("openai", "anthropic", "google_cloud_platform"):
        owner = (forms.get(official) or {}).get("hook_class_name") or ""
        assert not owner.startswith("airflow_llm_batch"), (official, owner)


def press_test(airflow: AirflowStandalone, conn_type: str, host: str, key: str) -> dict[str, Any]:
    """The form's Test button: POST /api/v2/connections/test with the form's fields."""
    body = {"connection_id": f"ui_{conn_type}", "conn_type": conn_type, "host": host, "password": key,
            "extra": json.dumps({"timeout": 30})}
    status, answer = airflow.request("POST", "/api/v2/connections/test", body, timeout=60)
    assert status == 200, answer
    return dict(answer)


@pytest.mark.parametrize("conn_type", sorted(OUR_TYPES))
def test_the_test_button_makes_one_authenticated_call(conn_type: str, standalone: AirflowStandalone,
                                                      keyed_emulator: Emulator) -> None:
    counted = OUR_TYPES[conn_type][0]

    def counts() -> tuple[int, int]:
        stats = keyed_emulator.stats()[counted] if counted in keyed_emulator.stats() else {}
        return int(stats.get("api_requests", 0)), int(stats.get("refused_requests", 0))

    accepted, refused = counts()
    good = press_test(standalone, conn_type, keyed_emulator.url, GOOD_KEY)
    assert good["status"] is True, good
    assert good["message"].startswith("authenticated") and GOOD_KEY not in good["message"]
    assert counts() == (accepted + 1, refused)

    bad = press_test(standalone, conn_type, keyed_emulator.url, WRONG_KEY)
    assert bad["status"] is False, bad
    assert "the service refused the credentials (HTTP 401)" in bad["message"]
    assert WRONG_KEY not in bad["message"]
    assert counts() == (accepted + 1, refused + 1)

