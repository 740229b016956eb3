#!/usr/bin/env python
"""Emulator cost: CPU milliseconds the bundled emulator spends per answer, on its own process.

The emulator runs in a subprocess on a free 127.0.0.1 port (``--api-key`` set, so the gateway checks
a key on every request); a light aiohttp client in this process keeps ``--concurrency`` requests in
flight until ``--n`` are answered, and the emulator's CPU time (/proc/<pid>/task/*/schedstat, ns) over
the run is divided by the answers. Scenarios:

- ``chat``: real-time ``POST /v1/chat/completions``, each body different (what
  ``realtime_throughput.py`` sends, with the ``x-llm-batch-custom-id`` header), answered after
  ``--latency`` s;
- ``retrieve``: ``GET /v1/batches/{id}`` of one open batch (what a trigger's poll asks).

``--baseline DIR`` measures, in the same run, the emulator package found in DIR (e.g. an export of
main: ``git archive main airflow_llm_batch | tar -x -C /tmp/emu-main``), alternating with this tree's
for ``--rounds`` rounds; the median per (variant, scenario) is reported. ``--floor`` adds a bare
aiohttp app on the same routes giving a fixed answer: what aiohttp alone costs per answer, the floor
of any aiohttp server. ``--profile`` runs the emulator under cProfile (CPU clock) and prints its top
functions per scenario.

    .venv/bin/python bench/emulator_cost.py                                     # 5,000 per scenario
    .venv/bin/python bench/emulator_cost.py --baseline /tmp/emu-main --floor --rounds 5 --n 8000
    .venv/bin/python bench/emulator_cost.py --scenario chat --n 3000 --profile
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trigger_load import EMULATOR_PIDS, OUT_DIR, ROOT, create_open_batches, emulator_process, process_cpu

API_KEY = "bench-key"
CUSTOM_ID_HEADER = "x-llm-batch-custom-id"
HEADER = "| scenario | variant | answers | server CPU ms/answer (median) | runs (ms/answer) |"


def chat_body(i: int) -> bytes:
    text = f"Classify the sentiment of review number {i}: it was fine."
    return json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}).encode()


async def drive(url: str, scenario: str, n: int, concurrency: int) -> int:
    """Send ``n`` requests, ``concurrency`` at a time; the number of 200 answers."""
    import aiohttp

    auth = {"Authorization": f"Bearer {API_KEY}"}
    if scenario == "retrieve":
        batch_id = (await asyncio.to_thread(create_open_batches, url, 1))[0]
    bodies = [chat_body(i) for i in range(n)] if scenario == "chat" else []
    queue = iter(range(n))
    ok = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal ok
            for i in queue:
                if scenario == "chat":
                    headers = {**auth, "Content-Type": "application/json", CUSTOM_ID_HEADER: f"r{i}"}
                    call = session.post(f"{url}/v1/chat/completions", data=bodies[i], headers=headers)
                else:
                    call = session.get(f"{url}/v1/batches/{batch_id}", headers=auth)
                async with call as resp:
                    await resp.read()
                    ok += resp.status == 200

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid``, in ns from /proc/<pid>/task/*/schedstat (the 10-ms ticks of
    /proc/<pid>/stat are too coarse for runs of a few seconds); the ticks where schedstat is missing."""
    try:
        return sum(int((task / "schedstat").read_text().split()[0])
                   for task in Path(f"/proc/{pid}/task").iterdir()) / 1e9
    except (OSError, ValueError, IndexError):
        return process_cpu(pid)


EMULATOR = ("-m", "airflow_llm_batch.emulator")
FLOOR = (str(Path(__file__).resolve()), "--serve-floor", "--")


def measure(args: argparse.Namespace, scenario: str, root: Path, launch: tuple[str, ...] = EMULATOR) -> float:
    """Server CPU ms per answer of one run of ``scenario`` against the package in ``root``."""
    flags = ("--api-key", API_KEY, "--realtime-latency-seconds", str(args.latency), "--requests-per-second", "0.001")
    with emulator_process(*flags, root=root, launch=launch) as url:
        pid = EMULATOR_PIDS[url]
        cpu0 = cpu_seconds(pid)
        ok = asyncio.run(drive(url, scenario, args.n, args.concurrency))
        cpu = cpu_seconds(pid) - cpu0
    if ok != args.n:
        raise SystemExit(f"{scenario}: only {ok} of {args.n} requests answered 200")
    return 1000 * cpu / ok


def serve_profiled(out: str, emulator_args: list[str]) -> None:
    """Run the emulator's command line under cProfile (CPU clock); dump the profile on exit (SIGTERM)."""
    from airflow_llm_batch.emulator.cli import main as emulator_main

    profile = cProfile.Profile(time.process_time)
    try:
        profile.runcall(emulator_main, emulator_args)
    finally:
        profile.dump_stats(out)


def serve_floor(argv: list[str]) -> None:
    """The floor: a bare aiohttp app on the same routes (no middleware, no key check, no counters)
    giving one fixed answer; the latency is the same ``asyncio.sleep``."""
    from aiohttp import web

    parser = argparse.ArgumentParser()
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--realtime-latency-seconds", type=float, default=0.0)
    args, _ = parser.parse_known_args(argv)
    text = "Classify the sentiment of review number 1: it was fine."
    answer = json.dumps({"id": "chatcmpl-floor", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                      "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 20, "completion_tokens": 14, "total_tokens": 34}}).encode()
    batch = json.dumps({"id": "batch_floor", "object": "batch", "endpoint": "/v1/chat/completions",
                        "status": "in_progress", "input_file_id": "file-floor", "completion_window": "24h",
                        "created_at": 1, "request_counts": {"total": 1, "completed": 0, "failed": 0}}).encode()

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(args.realtime_latency_seconds)
        return web.Response(body=answer, content_type="application/json")

    async def fixed(request: web.Request) -> web.Response:
        await request.read()
        body = b'{"id": "file-floor", "object": "file"}' if request.path.endswith("files") else batch
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    for method, path in (("GET", "/_emulator/health"), ("POST", "/v1/files"), ("POST", "/v1/batches"),
                         ("GET", "/v1/batches/{batch_id}")):
        app.router.add_route(method, path, fixed)
    web.run_app(app, host=args.host, port=args.port, print=None)


def print_profile(path: Path, scenario: str, n: int) -> None:
    stats = pstats.Stats(str(path))
    print(f"\n## cProfile of the emulator, {scenario}, {n} answers (CPU clock; tottime)\n")
    stats.sort_stats(os.environ.get("BENCH_SORT", "tottime")).print_stats(30)


def run_all(args: argparse.Namespace) -> tuple[list[str], dict[tuple[str, str], list[float]]]:
    variants: list[tuple[str, Path, tuple[str, ...]]] = [("this tree", ROOT, EMULATOR)]
    if args.baseline is not None:
        variants.insert(0, ("baseline", args.baseline.resolve(), EMULATOR))
    if args.floor:
        variants.append(("aiohttp floor", ROOT, FLOOR))
    runs: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for scenario in args.scenario:
            for name, root, launch in variants:
                runs.setdefault((scenario, name), []).append(measure(args, scenario, root, launch))
    lines = [HEADER, "|---|---|---:|---:|---|"]
    for (scenario, name), values in runs.items():
        shown = ", ".join(f"{v:.3f}" for v in values)
        lines.append(f"| {scenario} | {name} | {args.n:,} | {statistics.median(values):.3f} | {shown} |")
    return lines, runs


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve-profiled"]:
        serve_profiled(argv[1], argv[3:])
        return 0
    if argv[:1] == ["--serve-floor"]:
        serve_floor(argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5000, help="answers per run")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.05, help="the emulator's real-time answer time, s")
    parser.add_argument("--scenario", nargs="+", choices=("chat", "retrieve"), default=["chat", "retrieve"])
    parser.add_argument("--rounds", type=int, default=1, help="runs per (variant, scenario), alternated")
    parser.add_argument("--baseline", type=Path, help="a folder holding another airflow_llm_batch package")
    parser.add_argument("--floor", action="store_true",
                        help="also measure a bare aiohttp app giving a fixed answer (what aiohttp alone costs)")
    parser.add_argument("--profile", action="store_true", help="one profiled run per scenario (this tree)")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "emulator_cost.md")
    args = parser.parse_args(argv)
    if args.profile:
        with tempfile.TemporaryDirectory(prefix="llmb-emucost-") as folder:
            for scenario in args.scenario:
                out = Path(folder) / f"{scenario}.prof"
                measure(args, scenario, ROOT, (str(Path(__file__).resolve()), "--serve-profiled", str(out), "--"))
                print_profile(out, scenario, args.n)
        return 0
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    lines, _ = run_all(args)
    load_after = " ".join(f"{x:.2f}" for x in os.getloadavg())
    text = "\n".join(lines) + f"\n\nload average before {load_before}, after {load_after}\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
