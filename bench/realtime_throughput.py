"""Real-time throughput: the RealtimeRunner over a backend's ``realtime_send`` (``--provider openai``, the
default, or ``gemini``) against the emulator in its own process, answering each request after ``--latency``
s; one table row per transport, side by side:

- ``raw``: the backend's own raw sender (backends/raw_realtime_send.py; what a task uses) on the lean
  HTTP/1.1 client (backends/lean_http.py);
- ``raw-aiohttp``: the same raw sender on an aiohttp session (what it uses behind a proxy; before the lean
  client, what it always used);
- ``sdk``: the official SDK's async client (OpenAI: httpx, the path kept for custom auth; Gemini: google-genai,
  the path kept for Vertex AI and clients built without their arguments);
- ``sdk-aiohttp``: the OpenAI SDK with its aiohttp-based client.

Figures (one row per run):

- **req/s (ideal)**: answered requests / wall time of the run; ideal = concurrency / latency
  (64 / 0.05 s = 1,280/s), and the share of it achieved;
- **CPU ms/req (runner)**: CPU time (user + system) of this process only, over the run, per HTTP call;
- **emulator CPU ms/req**: the emulator process's, to show whether the server side was the limit;
- **peak RSS** of the process of the run (each transport runs in its own forked process).

Every row must come back answered (the emulator's own count of answered custom ids is checked).

    .venv/bin/python bench/realtime_throughput.py                       # 10,000 rows, 64 in flight, 50 ms: sdk, raw
    .venv/bin/python bench/realtime_throughput.py --rows 2000 --concurrency 32 --latency 0.1
    .venv/bin/python bench/realtime_throughput.py --transport raw sdk sdk-aiohttp
    .venv/bin/python bench/realtime_throughput.py --rows 5000 --transport raw-aiohttp raw   # lean vs aiohttp
    .venv/bin/python bench/realtime_throughput.py --transport raw --profile   # + cProfile of the run (top 25)
    .venv/bin/python bench/realtime_throughput.py --provider gemini --rows 3000 --transport sdk raw
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import multiprocessing
import os
import pstats
import resource
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trigger_load import EMULATOR_PIDS, OUT_DIR, emulator_process, process_cpu

import airflow_llm_batch.hooks  # noqa: F401  (as on a worker: the SDKs' per-request INFO line is off)
from airflow_llm_batch.backends.gemini import GeminiBatchBackend
from airflow_llm_batch.backends.openai import OpenAIBatchBackend
from airflow_llm_batch.pipeline.types import Endpoint, LLMRequest
from airflow_llm_batch.realtime.answer_log import AnswerLog
from airflow_llm_batch.realtime.runner import RealtimeRequest, RealtimeRunner, RunnerSettings

LOAD_BEFORE = " ".join(f"{x:.2f}" for x in os.getloadavg())
HEADER = ("| provider | rows | concurrency | latency ms | transport | wall s | req/s (ideal) | share of ideal | "
          "CPU ms/req (runner) | emulator CPU ms/req | peak RSS MiB |")


Backend = OpenAIBatchBackend | GeminiBatchBackend
MODELS = {"openai": "gpt-4o-mini", "gemini": "gemini-2.5-flash"}


def build_backend(base_url: str, transport: str, concurrency: int, provider: str = "openai") -> Backend:
    if provider == "gemini":
        return _gemini_backend(base_url, transport, concurrency)
    from openai import AsyncOpenAI

    http_client = None
    if transport == "sdk-aiohttp":
        from airflow_llm_batch.triggers.shared_backends import aiohttp_client

        http_client = aiohttp_client("openai", max_connections=concurrency)
    backend = OpenAIBatchBackend(AsyncOpenAI(base_url=f"{base_url}/v1", api_key="bench-key", http_client=http_client))
    backend.realtime.connections, backend.realtime.use_sdk = concurrency, transport.startswith("sdk")
    sender = backend.realtime.sender()
    if transport == "raw-aiohttp" and sender is not None:  # the raw sender on aiohttp, as behind a proxy
        from airflow_llm_batch.backends.raw_http import AiohttpClient, open_session
        from airflow_llm_batch.backends.raw_realtime_send import json_target

        sender.session = AiohttpClient(open_session(json_target(sender.target), concurrency))
    return backend


def _gemini_backend(base_url: str, transport: str, concurrency: int) -> GeminiBatchBackend:
    """A Gemini backend as the hook builds it (its raw target from the client's arguments)."""
    from google.genai import types

    if transport not in ("raw", "sdk"):
        raise SystemExit(f"--provider gemini runs the transports raw and sdk, not {transport}")
    backend = GeminiBatchBackend.from_client_kwargs(
        {"api_key": "bench-key", "vertexai": False, "http_options": types.HttpOptions(base_url=base_url)})
    backend.realtime.connections, backend.realtime.use_sdk = concurrency, transport == "sdk"
    return backend


def requests_for(backend: Backend, rows: int) -> list[RealtimeRequest]:
    out = []
    for i in range(rows):
        request = LLMRequest(custom_id=f"r{i}", key=f"r{i}", model=MODELS[backend.name], endpoint=Endpoint.CHAT,
                             prompt=f"Classify the sentiment of review number {i}: it was fine.")
        out.append(RealtimeRequest(request.custom_id, backend.request_line(request), tokens=20))
    return out


async def run(base_url: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    backend = build_backend(base_url, args.transport, args.concurrency, args.provider)
    if not args.transport.startswith("sdk") and backend.realtime.sender() is None:
        raise SystemExit("the raw transport is not available for this client")
    requests = requests_for(backend, args.rows)
    settings = RunnerSettings(max_concurrency=args.concurrency, progress_every=3600.0)
    runner = RealtimeRunner(lambda request: backend.realtime_send(request.body), settings, AnswerLog(folder))
    profile = cProfile.Profile(time.process_time) if args.profile else None  # CPU, not wall
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if profile:
        profile.enable()
    try:
        report = await runner.run(requests, len(requests))
    finally:
        if profile:
            profile.disable()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        await backend.aclose()
    if profile:
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats(os.environ.get("BENCH_SORT", "tottime")).print_stats(25)
        print(text.getvalue())
    return {"report": report.to_dict(), "wall": wall, "cpu": cpu}


def loop_factory(name: str) -> Any:
    """None: asyncio's own loop (as a task runs today); ``uvloop``: its faster loop (a dependency of uvicorn)."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None


def emulator_realtime(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/_emulator/stats", timeout=30) as resp:
        return dict(json.load(resp)["realtime"])


def measure(args: argparse.Namespace) -> dict[str, Any]:
    flags = ("--realtime-latency-seconds", str(args.latency))
    with emulator_process(*flags) as url, tempfile.TemporaryDirectory(prefix="llmb-rt-bench-") as folder:
        emu_cpu0 = process_cpu(EMULATOR_PIDS[url])
        with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
            result = runner.run(run(url, args, Path(folder)))
        emu_cpu = process_cpu(EMULATOR_PIDS[url]) - emu_cpu0
        served = emulator_realtime(url)
    report = result["report"]
    answered_once = sum(1 for n in served["answered_by_custom_id"].values() if n == 1)
    if report["answered"] != args.rows or answered_once != args.rows:
        raise SystemExit(f"not every row was answered once: runner {report}, emulator answered {answered_once}")
    calls = max(1, report["calls"])
    return {**vars(args), "wall": result["wall"], "rps": report["answered"] / result["wall"],
            "ideal": args.concurrency / args.latency, "cpu_ms": 1000 * result["cpu"] / calls,
            "emu_cpu_ms": 1000 * emu_cpu / calls, "peak_in_flight": served["peak_in_flight"],
            "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "calls": report["calls"]}


def table_row(r: dict[str, Any]) -> str:
    return (f"| {r['provider']} | {r['rows']:,} | {r['concurrency']} | {1000 * r['latency']:.0f} | {r['transport']} | "
            f"{r['wall']:.1f} | "
            f"{r['rps']:,.0f} ({r['ideal']:,.0f}) | {100 * r['rps'] / r['ideal']:.0f}% | {r['cpu_ms']:.3f} | "
            f"{r['emu_cpu_ms']:.3f} | {r['rss_mib']:.0f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--provider", choices=sorted(MODELS), default="openai",
                        help="the backend whose real-time sends are measured (default: %(default)s)")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64, help="max_concurrency of the runner")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the emulator takes per answer")
    parser.add_argument("--transport", nargs="+", choices=("raw", "raw-aiohttp", "sdk", "sdk-aiohttp"),
                        default=["sdk", "raw"],
                        help="one run per transport, in this order (default: %(default)s)")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                        help="the event loop of the runner (default: %(default)s)")
    parser.add_argument("--profile", action="store_true",
                        help="print a cProfile of the run (top 25 by CPU; sort: $BENCH_SORT, default tottime)")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "realtime_throughput.md")
    args = parser.parse_args(argv)
    lines, notes = [HEADER, "|---|" + "---:|" * 3 + "---|" + "---:|" * 6], []
    for transport in args.transport:
        with multiprocessing.get_context("fork").Pool(1) as pool:  # own process: own CPU and peak RSS
            result = pool.apply(measure, (argparse.Namespace(**{**vars(args), "transport": transport}),))
        lines.append(table_row(result))
        notes.append(f"{transport}: peak in flight at the emulator {result['peak_in_flight']}, "
                     f"HTTP calls {result['calls']}")
    text = "\n".join(lines) + f"\n\nload average before the runs: {LOAD_BEFORE}\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text + "\n".join(notes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
