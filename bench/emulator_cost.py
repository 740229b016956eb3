#!/usr/bin/env python
"""Emulator cost: CPU milliseconds the bundled emulator spends per answer, on its own process.

The emulator runs in a subprocess on a free 127.0.0.1 port (``--api-key`` set, so the gateway checks
a key on every request); a light aiohttp client in this process keeps ``--concurrency`` requests in
flight until ``--n`` are answered, and the emulator's CPU time (user + system, /proc/<pid>/stat) over
the run is divided by the answers. Scenarios:

- ``chat``: real-time ``POST /v1/chat/completions``, each body different (what
  ``realtime_throughput.py`` sends, with the ``x-llm-batch-custom-id`` header), answered after
  ``--latency`` s;
- ``retrieve``: ``GET /v1/batches/{id}`` of one open batch (what a trigger's poll asks).

``--baseline DIR`` measures, in the same run, the emulator package found in DIR (e.g. an export of
main: ``git archive main airflow_llm_batch | tar -x -C /tmp/emu-main``), alternating with this tree's
for ``--rounds`` rounds; the median per (variant, scenario) is reported. ``--profile`` runs the
emulator under cProfile (CPU clock) and prints its top functions per scenario.

    .venv/bin/python bench/emulator_cost.py                                     # 5,000 per scenario
    .venv/bin/python bench/emulator_cost.py --baseline /tmp/emu-main --rounds 3
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
HEADER = "| scenario | variant | answers | emulator CPU ms/answer (median) | runs (ms/answer) |"


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


def launcher(profile_out: Path | None) -> tuple[str, ...]:
    if profile_out is None:
        return ("-m", "airflow_llm_batch.emulator")
    return (str(Path(__file__).resolve()), "--serve-profiled", str(profile_out), "--")


def measure(args: argparse.Namespace, scenario: str, root: Path, profile_out: Path | None = None) -> float:
    """Emulator CPU ms per answer of one run of ``scenario`` against the package in ``root``."""
    flags = ("--api-key", API_KEY, "--realtime-latency-seconds", str(args.latency), "--requests-per-second", "0.001")
    with emulator_process(*flags, root=root, launch=launcher(profile_out)) as url:
        pid = EMULATOR_PIDS[url]
        cpu0 = process_cpu(pid)
        ok = asyncio.run(drive(url, scenario, args.n, args.concurrency))
        cpu = process_cpu(pid) - cpu0
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


def print_profile(path: Path, scenario: str, n: int) -> None:
    stats = pstats.Stats(str(path))
    print(f"\n## cProfile of the emulator, {scenario}, {n} answers (CPU clock; tottime)\n")
    stats.sort_stats(os.environ.get("BENCH_SORT", "tottime")).print_stats(30)


def run_all(args: argparse.Namespace) -> tuple[list[str], dict[tuple[str, str], list[float]]]:
    variants: list[tuple[str, Path]] = [("this tree", ROOT)]
    if args.baseline is not None:
        variants.insert(0, ("baseline", args.baseline.resolve()))
    runs: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for scenario in args.scenario:
            for name, root in variants:
                runs.setdefault((scenario, name), []).append(measure(args, scenario, root))
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5000, help="answers per run")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.05, help="the emulator's real-time answer time, s")
    parser.add_argument("--scenario", nargs="+", choices=("chat", "retrieve"), default=["chat", "retrieve"])
    parser.add_argument("--rounds", type=int, default=1, help="runs per (variant, scenario), alternated")
    parser.add_argument("--baseline", type=Path, help="a folder holding another airflow_llm_batch package")
    parser.add_argument("--profile", action="store_true", help="one profiled run per scenario (this tree)")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "emulator_cost.md")
    args = parser.parse_args(argv)
    if args.profile:
        with tempfile.TemporaryDirectory(prefix="llmb-emucost-") as folder:
            for scenario in args.scenario:
                out = Path(folder) / f"{scenario}.prof"
                measure(args, scenario, ROOT, profile_out=out)
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
