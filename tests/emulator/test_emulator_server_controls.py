"""The test controls both runners share (``_EmulatorHandle``): one implementation, two loops."""

from __future__ import annotations

import threading

import httpx
import pytest

from airflow_llm_batch.emulator import AsyncEmulator, Emulator, EmulatorConfig, FaultPlan
from airflow_llm_batch.emulator.state import EmulatorState


def _drive_controls(emu: AsyncEmulator | Emulator) -> list[object]:
    """Use every control once; what each one showed, in order."""
    seen: list[object] = [emu.fault_plan]
    emu.set_fault_plan(FaultPlan(row_error_rate=0.5, seed=3))
    seen.append(emu.fault_plan)
    emu.clear_fault_plan()
    seen.append(emu.fault_plan)
    emu.inject_fault(418, count=2, path_prefix="/v1/files", method="get", message="teapot")
    seen.append(emu._call(lambda state: [(f.status, f.count, f.method, f.message) for f in state.faults]))
    emu.clear_faults()
    seen.append(emu._call(lambda state: list(state.faults)))
    with pytest.raises(TypeError, match="FaultPlan"):
        emu.set_fault_plan({"seed": 1})  # type: ignore[arg-type]
    return seen


EXPECTED: list[object] = [
    None,
    FaultPlan(row_error_rate=0.5, seed=3),
    None,
    [(418, 2, "get", "teapot")],
    [],
]


async def test_in_loop_runner_controls_its_own_state(fast_config: EmulatorConfig) -> None:
    async with AsyncEmulator(fast_config) as emu:
        assert _drive_controls(emu) == EXPECTED
        assert emu.openai_base_url == emu.url + "/v1" and emu.anthropic_base_url == emu.url
        assert emu.url == f"http://127.0.0.1:{emu.port}" and emu.address[1] == emu.port


def test_threaded_runner_runs_each_control_on_the_server_loop(fast_config: EmulatorConfig) -> None:
    with Emulator(fast_config) as emu:
        assert _drive_controls(emu) == EXPECTED
        assert emu._call(lambda state: threading.current_thread()) is emu._thread
        emu.inject_fault(503, path_prefix="/_emulator/health")
        assert httpx.get(emu.url + "/_emulator/health").status_code == 200  # control routes never fault
        assert emu.openai_base_url == emu.url + "/v1" and emu.anthropic_base_url == emu.url
    assert emu._call(lambda state: isinstance(state, EmulatorState))  # stopped: runs in the caller


def test_threaded_runner_stats_follow_requests(fast_config: EmulatorConfig) -> None:
    with Emulator(fast_config) as emu:
        emu.inject_fault(500, path_prefix="/v1/batches", method="GET")
        assert httpx.get(emu.openai_base_url + "/batches").status_code == 500
        assert httpx.get(emu.openai_base_url + "/batches").status_code == 200
        counted = emu.stats()["openai"]
        assert (counted["api_requests"], counted["http_errors_by_status"]) == (2, {"500": 1})
        emu.reset_stats()
        zeroed = emu.stats()["openai"]
        assert (zeroed["api_requests"], zeroed["http_errors_by_status"]) == (0, {})
