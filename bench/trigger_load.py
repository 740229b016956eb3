#!/usr/bin/env python
"""Triggerer load: N ``LLMBatchTrigger`` s in ONE asyncio loop, as Airflow's triggerer runs them.

Each trigger watches one OpenAI batch on the bundled emulator, polling every ``--interval`` seconds
(2 s), for a fixed ``--window`` (30 s) from the moment the triggers start. The emulator runs in its
own PROCESS (its CPU does not count against the loop), bound to 127.0.0.1, at a pace so slow that
every batch stays open for the whole window. The connection is an ``AIRFLOW_CONN_<ID>`` env var.

For every N, a fresh subprocess (so its RSS is its own) runs the loop and reports:

- polls/s: polls completed per second in the steady state (second half of the window; the ideal is
  N / interval), counted by wrapping the trigger's poll function and cross-checked with the emulator's
  own request counter over the whole window;
- loop lag: how late a 50-ms ticker task wakes up (p50 / p99 / max over the whole window), and how
  busy the loop was (process CPU / wall);
- CPU per poll: process CPU time / polls, in the steady state;
- startup: time until every trigger completed its first poll;
- RSS: peak resident set size of the loop process.

Usage::

    .venv/bin/python bench/trigger_load.py                      # N = 100, 500, 1000
    .venv/bin/python bench/trigger_load.py --n 1000 --window 30
    .venv/bin/python bench/trigger_load.py --n 50 --window 6 --out /tmp/t.md    # smoke
    .venv/bin/python bench/trigger_load.py --n 500 1000 --window 20 --compare-transport   # aiohttp vs lean

The Markdown table is printed and written to ``bench/out/trigger_load.md`` (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = Path(__file__).resolve().parent / "out"
RESULT_MARK = "BENCH_RESULT "
CONN_ID = "bench_openai"
TICK = 0.05


# -- the emulator, in its own process ----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux /proc; 0.0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


EMULATOR_PIDS: dict[str, int] = {}


@contextmanager
def emulator_process(*flags: str, root: Path = ROOT,
                     launch: tuple[str, ...] = ("-m", "airflow_llm_batch.emulator")) -> Iterator[str]:
    """Start ``python -m airflow_llm_batch.emulator`` on a free loopback port; yield its base URL; stop it.

    ``root`` is the working folder (its ``airflow_llm_batch`` package is the one imported); ``launch``
    replaces ``-m airflow_llm_batch.emulator`` (e.g. a script wrapping the emulator's command line)."""
    port = free_port()
    cmd = [sys.executable, *launch, "--host", "127.0.0.1", "--port", str(port), *flags]
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_emulator/health", timeout=1):
                    break
            except OSError as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read() if proc.stderr else b""
                    raise RuntimeError(f"emulator did not start: {err!r}") from exc
                time.sleep(0.1)
        EMULATOR_PIDS[url] = proc.pid
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def emulator_requests(url: str, provider: str = "openai") -> int:
    with urllib.request.urlopen(f"{url}/_emulator/stats", timeout=30) as resp:
        return int(json.load(resp)[provider]["api_requests"])


def create_open_batches(url: str, n: int) -> list[str]:
    """N one-request batches (they stay open: the emulator runs at a very slow pace)."""
    from openai import OpenAI

    line = json.dumps({"custom_id": "c0", "method": "POST", "url": "/v1/chat/completions",
                       "body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}}).encode()
    with OpenAI(base_url=f"{url}/v1", api_key="bench-key", max_retries=5) as client:
        upload = client.files.create(file=("in.jsonl", line), purpose="batch")
        return [client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                      completion_window="24h").id for _ in range(n)]


# -- the loop process --------------------------------------------------------------------------------------
def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Meter:
    """Counts completed polls by wrapping the trigger module's poll function; samples CPU each second."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.polls = 0
        self.failed_polls = 0
        self.first_poll: dict[str, float] = {}
        self.samples: list[tuple[float, int, float]] = []  # (seconds since start, polls, process CPU s)
        self.lags: list[float] = []

    def wrap(self, poll: Any) -> Any:
        async def counted(backend: Any, batch_id: str) -> Any:
            try:
                progress = await poll(backend, batch_id)
            except Exception:
                self.failed_polls += 1
                raise
            self.polls += 1
            self.first_poll.setdefault(batch_id, time.perf_counter() - self.start)
            return progress

        return counted

    async def tick(self) -> None:
        """Event-loop lag: how late a TICK-second sleep wakes up."""
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(TICK)
            self.lags.append(time.perf_counter() - t0 - TICK)

    async def sample(self) -> None:
        while True:
            self.samples.append((time.perf_counter() - self.start, self.polls, _cpu()))
            await asyncio.sleep(1.0)


def variant(transport: str, jitter: bool) -> None:
    """A/B switches: ``sdk`` = polls through the SDK client (aiohttp transport), not the raw poll;
    ``httpx`` = through the SDK client on its default httpx pool; ``aiohttp`` = the raw poll on an aiohttp
    session (as behind a proxy) instead of the lean client; no jitter = every first poll at once."""
    import airflow_llm_batch.triggers.batch as trigger_module
    import airflow_llm_batch.triggers.raw_poll as raw_poll
    import airflow_llm_batch.triggers.shared_backends as shared
    from airflow_llm_batch.backends.raw_http import AiohttpClient, open_session

    if transport == "aiohttp":
        raw_poll.open_client = lambda target, limit: AiohttpClient(open_session(target, limit))  # type: ignore[assignment]

    if transport in ("sdk", "httpx") and hasattr(shared, "raw_poller"):
        shared.raw_poller = lambda *args, **kwargs: None  # type: ignore[assignment]
    if transport == "httpx" and hasattr(shared, "aiohttp_client"):
        shared.aiohttp_client = lambda *args, **kwargs: None  # type: ignore[assignment]
    if not jitter and hasattr(trigger_module, "first_poll_delay"):
        trigger_module.first_poll_delay = lambda interval: 0.0  # type: ignore[assignment]


async def run_loop(ids: list[str], interval: float, window: float, transport: str = "package",
                   jitter: bool = True) -> dict[str, Any]:
    import airflow_llm_batch.triggers.batch as trigger_module
    from airflow_llm_batch.triggers.batch import LLMBatchTrigger

    meter = Meter()
    variant(transport, jitter)
    trigger_module.progress_or_gone = meter.wrap(trigger_module.progress_or_gone)  # type: ignore[assignment]
    events: list[Any] = []

    async def consume(trigger: LLMBatchTrigger) -> None:  # what the triggerer does with each trigger
        async for event in trigger.run():
            events.append(event.payload)

    cpu0, rss0 = _cpu(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    meter.start = time.perf_counter()
    helpers = [asyncio.create_task(meter.tick()), asyncio.create_task(meter.sample())]
    tasks = [asyncio.create_task(consume(LLMBatchTrigger(provider="openai", conn_id=CONN_ID, batch_ids=[b],
                                                         poll_interval=interval))) for b in ids]
    await asyncio.sleep(window)
    end_cpu, wall = _cpu(), time.perf_counter() - meter.start
    meter.samples.append((wall, meter.polls, end_cpu))
    for task in tasks + helpers:
        task.cancel()
    await asyncio.gather(*tasks, *helpers, return_exceptions=True)
    return summarise(meter, len(ids), interval, wall, end_cpu - cpu0, rss0, events)


def summarise(meter: Meter, n: int, interval: float, wall: float, cpu: float, rss0: int,
              events: list[Any]) -> dict[str, Any]:
    half = next((s for s in meter.samples if s[0] >= wall / 2), meter.samples[0])
    last = meter.samples[-1]
    steady_polls, steady_cpu = last[1] - half[1], last[2] - half[2]
    steady_s = max(1e-9, last[0] - half[0])
    status = Path("/proc/self/status").read_text() if Path("/proc/self/status").exists() else ""
    rss_now = next((int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS:")), 0)
    return {
        "n": n, "interval": interval, "window": wall, "polls": meter.polls, "failed_polls": meter.failed_polls,
        "ideal_per_s": n / interval, "polls_per_s": steady_polls / steady_s,
        "polls_per_s_window": meter.polls / wall,
        "cpu_ms_per_poll": 1000 * steady_cpu / max(1, steady_polls),
        "cpu_ms_per_poll_window": 1000 * cpu / max(1, meter.polls),
        "busy": cpu / wall,
        "lag_p50_ms": 1000 * _pct(meter.lags, 0.50), "lag_p99_ms": 1000 * _pct(meter.lags, 0.99),
        "lag_max_ms": 1000 * max(meter.lags, default=float("nan")),
        "polled_once": len(meter.first_poll),
        "startup_s": max(meter.first_poll.values()) if len(meter.first_poll) == n else None,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mib": rss0 / 1024, "rss_end_mib": rss_now / 1024,
        "events": len(events), "event_samples": events[:3],
    }


def worker(ids_file: Path, interval: float, window: float, log_file: Path, profile: bool = False,
           transport: str = "package", jitter: bool = True) -> None:
    # the triggerer logs at INFO into a file; do the same so a per-request log line would cost what it costs there
    logging.basicConfig(level=logging.INFO, filename=str(log_file), format="%(asctime)s %(name)s %(message)s")
    import airflow_llm_batch.triggers.batch  # noqa: F401  (import cost is not part of the window)

    ids = json.loads(ids_file.read_text())
    if profile:
        import cProfile
        import io
        import pstats

        prof = cProfile.Profile()
        result = prof.runcall(asyncio.run, run_loop(ids, interval, window, transport, jitter))
        buf = io.StringIO()
        stats = pstats.Stats(prof, stream=buf).sort_stats(os.environ.get("BENCH_SORT", "tottime"))
        stats.print_stats(int(os.environ.get("BENCH_TOP", "25")))
        sys.stderr.write(buf.getvalue())
    else:
        result = asyncio.run(run_loop(ids, interval, window, transport, jitter))
    result["log_lines"] = sum(1 for _ in log_file.open())
    print(RESULT_MARK + json.dumps(result), flush=True)


# -- the parent --------------------------------------------------------------------------------------------
#: --compare: polls through the SDK client (its aiohttp transport, first polls spread), then the raw poll
#: on aiohttp, then the package as it is (the raw poll on the lean client); --compare-all adds the SDKs'
#: default httpx pool with every first poll at once (the code before issue 12)
VARIANTS = {"sdk client": ("sdk", True), "raw poll on aiohttp": ("aiohttp", True), "package": ("package", True)}
#: --compare-transport: the raw poll on aiohttp, then on the lean client (the package), side by side
TRANSPORT_VARIANTS = {"raw poll on aiohttp": ("aiohttp", True), "package (lean client)": ("package", True)}
ALL_VARIANTS = {"before (httpx pool)": ("httpx", False), **VARIANTS}


def measure(n: int, args: argparse.Namespace, workdir: Path, transport: str, jitter: bool) -> dict[str, Any]:
    with emulator_process("--requests-per-second", "0.0001", "--validating-seconds", "0") as url:
        ids = create_open_batches(url, n)
        ids_file = workdir / f"ids-{n}.json"
        ids_file.write_text(json.dumps(ids))
        env = dict(os.environ, **{f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(
            {"conn_type": "openai", "password": "bench-key", "host": f"{url}/v1"})})
        env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        env.setdefault("AIRFLOW_HOME", str(workdir / "airflow"))
        before, emu_cpu = emulator_requests(url), process_cpu(EMULATOR_PIDS[url])
        cmd = [sys.executable, __file__, "--worker", str(ids_file), "--interval", str(args.interval),
               "--window", str(args.window), "--log-file", str(workdir / f"loop-{n}.log")]
        cmd += ["--profile"] if args.profile else []
        cmd += ["--transport", transport] + ([] if jitter else ["--no-jitter"])
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout + proc.stderr)
            raise SystemExit(f"trigger loop at N={n} failed (exit {proc.returncode})")
        result: dict[str, Any] = json.loads(next(x for x in proc.stdout.splitlines()
                                                 if x.startswith(RESULT_MARK))[len(RESULT_MARK):])
        result["emulator_requests"] = emulator_requests(url) - before
        result["emulator_cpu_ms_per_request"] = (1000 * (process_cpu(EMULATOR_PIDS[url]) - emu_cpu)
                                                 / max(1, result["emulator_requests"]))
        if args.profile:
            print(proc.stderr[-12000:])
    return result


def table(results: list[dict[str, Any]]) -> list[str]:
    lines = ["| N | setup | polls/s (ideal) | emulator req/s (CPU ms/req) | lag p50 / p99 / max ms | loop busy "
             "| CPU ms/poll | startup s (all polled once) | peak RSS MiB | failed polls | events |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        startup = f"{r['startup_s']:.1f}" if r["startup_s"] is not None else f"not all ({r['polled_once']}/{r['n']})"
        lines.append(
            f"| {r['n']:,} | {r['setup']} | {r['polls_per_s']:.0f} ({r['ideal_per_s']:.0f}) | "
            f"{r['emulator_requests'] / r['window']:.0f} ({r['emulator_cpu_ms_per_request']:.2f}) | "
            f"{r['lag_p50_ms']:.1f} / {r['lag_p99_ms']:.0f} / "
            f"{r['lag_max_ms']:.0f} | {100 * r['busy']:.0f}% | {r['cpu_ms_per_poll']:.2f} | {startup} | "
            f"{r['peak_rss_mib']:.0f} | {r['failed_polls']} | {r['events']} |")
    return lines


def _label(transport: str, jitter: bool) -> str:
    name = {"package": "package", "sdk": "sdk client", "aiohttp": "raw poll on aiohttp"}.get(transport, "httpx pool")
    parts = [name] + ([] if jitter else ["no jitter"])
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[100, 500, 1000], help="numbers of triggers")
    ap.add_argument("--interval", type=float, default=2.0, help="poll interval of each trigger (s)")
    ap.add_argument("--window", type=float, default=30.0, help="seconds measured from the start of the triggers")
    ap.add_argument("--out", type=Path, default=OUT_DIR / "trigger_load.md")
    ap.add_argument("--transport", choices=("package", "aiohttp", "sdk", "httpx"), default="package",
                    help="package: the library's choice (raw poll, lean client); aiohttp: the raw poll on aiohttp; "
                         "sdk: poll through the SDK client (aiohttp transport); httpx: through the SDK client "
                         "on its default httpx pool (A/B)")
    ap.add_argument("--no-jitter", dest="jitter", action="store_false", help="first polls all at once (A/B)")
    ap.add_argument("--compare", action="store_true",
                    help="for each N, poll through the SDK client, then the package (raw poll): side by side")
    ap.add_argument("--compare-transport", action="store_true",
                    help="for each N, the raw poll on aiohttp, then on the lean client: side by side")
    ap.add_argument("--compare-all", action="store_true",
                    help="as --compare, first adding the httpx pool with every first poll at once (before issue 12)")
    ap.add_argument("--profile", action="store_true", help="cProfile the loop process (top 25 by own time)")
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--log-file", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker, args.interval, args.window, args.log_file, args.profile, args.transport, args.jitter)
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="llmb-trigger-load-") as tmp:
        variants = (ALL_VARIANTS if args.compare_all else VARIANTS if args.compare
                    else TRANSPORT_VARIANTS if args.compare_transport
                    else {_label(args.transport, args.jitter): (args.transport, args.jitter)})
        for n in args.n:
            for label, (transport, jitter) in variants.items():
                r = dict(measure(n, args, Path(tmp), transport, jitter), setup=label)
                results.append(r)
                print(f"N={n} {label}: {json.dumps({k: v for k, v in r.items() if k != 'event_samples'})}", flush=True)
    doc = ["# trigger_load benchmark", "",
           f"- {time.strftime('%Y-%m-%d %H:%M:%S')}, os.cpu_count()={os.cpu_count()}, load1 "
           f"{os.getloadavg()[0]:.1f}; {args.interval:g}-s polls, {args.window:g}-s window, one batch per trigger",
           "- polls/s and CPU/poll: steady state (second half of the window); lag: 50-ms ticker, whole window",
           "", *table(results), ""]
    text = "\n".join(doc)
    print("\n" + text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
