"""The emulator as a library and a command: lifecycle, binding, control routes, CLI."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from airflow_llm_batch.emulator import Emulator, EmulatorConfig, main, serve


def test_start_stop_and_context_manager(fast_config: EmulatorConfig) -> None:
    emu = Emulator(fast_config)
    assert not emu.running
    emu.start()
    try:
        assert emu.running
        assert httpx.get(emu.url + "/_emulator/health").json() == {"status": "ok"}
        with pytest.raises(RuntimeError):
            emu.start()
    finally:
        emu.stop()
    emu.stop()  # idempotent
    assert not emu.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(emu.url + "/_emulator/health")
    with Emulator(fast_config) as inside:
        url = inside.url
        assert httpx.get(url + "/_emulator/health").status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/_emulator/health")


def test_port_zero_picks_distinct_free_ports_on_loopback(fast_config: EmulatorConfig) -> None:
    with Emulator(fast_config) as first, Emulator(fast_config) as second:
        assert first.port != second.port
        assert first.address == ("127.0.0.1", first.port)
        assert first.url == f"http://127.0.0.1:{first.port}"


def test_busy_port_raises_on_start(fast_config: EmulatorConfig) -> None:
    with Emulator(fast_config) as running:
        clash = Emulator(fast_config.replace(port=running.port))
        with pytest.raises(OSError):
            clash.start()
        assert not clash.running


def test_stats_stay_readable_after_stop(fast_config: EmulatorConfig) -> None:
    emu = Emulator(fast_config)
    with emu:
        assert (
            httpx.post(
                emu.anthropic_base_url + "/v1/messages/batches",
                json={
                    "requests": [
                        {
                            "custom_id": "a",
                            "params": {
                                "model": "m",
                                "max_tokens": 5,
                                "messages": [{"role": "user", "content": "x"}],
                            },
                        }
                    ]
                },
            ).status_code
            == 200
        )
    assert emu.stats()["anthropic"]["requests_by_custom_id"] == {"a": 1}


def test_control_routes_inject_and_clear_faults(fast_config: EmulatorConfig) -> None:
    with Emulator(fast_config) as emu:
        added = httpx.post(
            emu.url + "/_emulator/faults", json={"status": 529, "count": 5, "path_prefix": "/v1/messages"}
        )
        assert added.status_code == 200
        failed = httpx.get(emu.url + "/v1/messages/batches")
        assert failed.status_code == 529
        assert failed.json()["error"]["type"] == "overloaded_error"
        assert httpx.get(emu.url + "/v1/batches").status_code == 200  # other prefix untouched
        assert httpx.delete(emu.url + "/_emulator/faults").status_code == 200
        assert httpx.get(emu.url + "/v1/messages/batches").status_code == 200
        assert httpx.post(emu.url + "/_emulator/faults", json={"bogus": 1}).status_code == 400
        assert httpx.post(emu.url + "/_emulator/reset").json() == {"reset": True}


def _one_batch_each(emu: Emulator, h: Any, custom_id: str) -> None:
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as client:
        assert h.run_openai_batch(client, [h.chat_line(custom_id, "x")], "/v1/chat/completions").status == "completed"
    with anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="k", max_retries=0) as claude:
        params = {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "x"}]}
        batch = claude.messages.batches.create(requests=[{"custom_id": custom_id, "params": params}])  # type: ignore[list-item]
        assert h.wait_anthropic(claude, batch.id).processing_status == "ended"


def test_counters_keep_counting_after_a_reset(fast_config: EmulatorConfig, h: Any) -> None:
    """A reset zeroes the counters the providers write to, so a 'paid twice' check after it can fail."""
    with Emulator(fast_config) as emu:
        _one_batch_each(emu, h, "before")
        for reset in (emu.reset_stats, lambda: httpx.post(emu.url + "/_emulator/reset").raise_for_status()):
            reset()
            assert emu.stats()["openai"]["batches_created"] == emu.stats()["anthropic"]["batches_created"] == 0
            _one_batch_each(emu, h, "again")
            _one_batch_each(emu, h, "again")
            for name in ("openai", "anthropic"):
                stats = emu.stats()[name]
                assert stats["batches_created"] == 2 and len(stats["batches"]) == 2, name
                assert stats["requests_by_custom_id"] == stats["accepted_requests_by_custom_id"] == {"again": 2}
                assert stats["succeeded_by_custom_id"] == {"again": 2}, f"{name}: paid twice went unseen"
                assert stats["api_requests"] > 0
            assert emu.stats()["openai"]["files_uploaded"] == 2


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        EmulatorConfig(requests_per_second=0)
    with pytest.raises(ValueError):
        EmulatorConfig(validating_seconds=-1)
    with pytest.raises(ValueError):
        EmulatorConfig(max_requests_per_batch=0)


# ------------------------------------------------------------------------------------------- CLI
@pytest.fixture
def cli_process() -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_llm_batch.emulator",
            "--port",
            "0",
            "--requests-per-second",
            "500",
            "--api-key",
            "cli-key",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    yield process
    if process.poll() is None:
        process.kill()
    process.communicate(timeout=10)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_cli_prints_the_urls_and_stops_on_sigterm(cli_process: subprocess.Popen[str]) -> None:
    assert cli_process.stdout is not None
    line = cli_process.stdout.readline()
    match = re.search(
        r"on (http://127\.0\.0\.1:\d+) \(OpenAI base_url (\S+), Anthropic base_url (\S+)\)", line
    )
    assert match, line
    url, openai_url, anthropic_url = match.groups()
    assert openai_url == url + "/v1" and anthropic_url == url
    assert httpx.get(openai_url + "/batches").status_code == 401
    assert httpx.get(openai_url + "/batches", headers={"Authorization": "Bearer cli-key"}).status_code == 200
    cli_process.send_signal(signal.SIGTERM)
    assert cli_process.wait(timeout=10) == 0


def test_cli_reports_a_busy_port(fast_config: EmulatorConfig, capsys: pytest.CaptureFixture[str]) -> None:
    with Emulator(fast_config) as running:
        assert main(["--port", str(running.port)]) == 1
    assert "cannot listen" in capsys.readouterr().err


def test_cli_rejects_bad_arguments() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--requests-per-second", "0"])
    assert exit_info.value.code == 2


def test_loopback_only_by_default() -> None:
    """The default config binds 127.0.0.1: the port is not reachable on another interface."""
    with Emulator(EmulatorConfig()) as emu:
        assert emu.address[0] == "127.0.0.1"
        other = _non_loopback_ipv4()
        if other is None:
            pytest.skip("no non-loopback IPv4 interface")
        with pytest.raises(OSError):
            socket.create_connection((other, emu.port), timeout=1).close()


def _non_loopback_ipv4() -> str | None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent for UDP connect
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


async def test_serve_runs_until_cancelled(fast_config: EmulatorConfig) -> None:
    ready: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.create_task(serve(fast_config, ready=lambda emu: ready.put_nowait(emu.url)))
    url = await asyncio.wait_for(ready.get(), timeout=10)
    async with httpx.AsyncClient() as client:
        assert (await client.get(url + "/_emulator/health")).status_code == 200
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(httpx.ConnectError):
            await client.get(url + "/_emulator/health")
