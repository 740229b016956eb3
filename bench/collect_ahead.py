#!/usr/bin/env python
"""Collect with the next chunk's answers downloading ahead (the package) vs one chunk at a time.

One process, the emulator in its own process on loopback: N rows are prepared, submitted and waited
for once (chunks of ``--chunk`` rows), then the same ended batches are collected again and again
from copies of the run folder, alternating the two ways, ``--reps`` times each:

- **ahead**: ``Collector.collect`` as shipped (answers_ahead.py: chunk k+1 downloads while chunk k is
  joined and written in a thread; at most two chunks' answers held);
- **serial**: the same code with each download started only when its chunk is stored.

``--mbps`` puts a throttling TCP relay between the client and the emulator (every answer byte at that
rate), standing in for a provider whose result files come over a real network; 0 = plain loopback.
Figures: wall and CPU seconds of each collect, and the tracemalloc peak of one extra run of each way.

Usage::

    .venv/bin/python bench/collect_ahead.py --rows 100000 --chunk 25000 --reps 3
    .venv/bin/python bench/collect_ahead.py --rows 100000 --chunk 25000 --reps 3 --mbps 200
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e import write_rows
from trigger_load import emulator_process, free_port

from airflow_llm_batch.pipeline import answers_ahead, collector, fast_json
from airflow_llm_batch.pipeline.parsing import OutputParser
from airflow_llm_batch.pipeline.render import RequestSpec
from airflow_llm_batch.pipeline.run import BatchRun

TAGS = {"dag_id": "bench", "task_id": "collect", "run_id": "r"}


class Serial(answers_ahead.AnswersAhead):
    """One download at a time, started when its chunk is asked for (``ahead=0``)."""

    def __init__(self, backend: Any, jobs: Any, *, ahead: int = 0) -> None:
        super().__init__(backend, jobs, ahead=0)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as fh:
        for line in fh:
            yield fast_json.loads(line)


async def relay(upstream_port: int, mbps: float) -> tuple[asyncio.Server, int]:
    """A TCP relay on loopback sending the upstream's bytes back at ``mbps`` megabytes per second."""
    per_second = mbps * 1_000_000

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, throttle: bool) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
                if throttle:
                    await asyncio.sleep(len(data) / per_second)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", upstream_port)
        try:
            await asyncio.gather(pipe(client_r, up_w, False), pipe(up_r, client_w, True))
        except asyncio.CancelledError:  # the loop is shutting down with a kept-alive connection open
            pass

    port = free_port()
    return await asyncio.start_server(handle, "127.0.0.1", port), port


def backend_for(url: str) -> Any:
    from openai import AsyncOpenAI

    from airflow_llm_batch.backends.openai import OpenAIBatchBackend

    return OpenAIBatchBackend(AsyncOpenAI(base_url=f"{url}/v1", api_key="bench", max_retries=0))


async def ended_run(url: str, work: Path, rows: int, chunk: int) -> Path:
    """Prepare, submit and wait for N rows once; return the run folder with every batch ended."""
    write_rows(work / "rows.jsonl", rows)
    backend = backend_for(url)
    run = BatchRun(work / "ws", backend, tags=TAGS)
    spec = RequestSpec(model="gpt-4o-mini", prompt="{{ row.text }}", key="id")
    manifest = run.prepare_or_load(lambda: read_rows(work / "rows.jsonl"), spec, max_rows_per_chunk=chunk)
    await run.submit(manifest)
    while manifest.open_batch_ids:
        await run.poll(manifest)
        await asyncio.sleep(0.2)
    await backend.aclose()
    return work / "ws"


async def collect_once(url: str, ended: Path, copy: Path, way: type[answers_ahead.AnswersAhead],
                       traced: bool) -> tuple[float, float, float]:
    """(wall s, CPU s, tracemalloc peak MiB or 0) of one collect of a copy of ``ended``."""
    shutil.copytree(ended, copy)
    collector.AnswersAhead = way  # type: ignore[misc]
    backend = backend_for(url)
    run = BatchRun(copy, backend, tags=TAGS)
    manifest = run.store.load()
    assert manifest is not None
    gc.collect()
    if traced:
        tracemalloc.start()
    start, start_cpu = time.perf_counter(), cpu()
    await run.collect(manifest, OutputParser())
    wall, used = time.perf_counter() - start, cpu() - start_cpu
    peak = tracemalloc.get_traced_memory()[1] / 2**20 if traced else 0.0
    tracemalloc.stop()
    await backend.aclose()
    assert manifest.is_done or all(c.results for c in manifest.chunks)
    shutil.rmtree(copy)
    return wall, used, peak


async def main(args: argparse.Namespace, url: str, work: Path) -> list[str]:
    ended = await ended_run(url, work, args.rows, args.chunk)
    server = None
    if args.mbps:
        server, port = await relay(int(url.rsplit(":", 1)[1]), args.mbps)
        url = f"http://127.0.0.1:{port}"
    ways = {"ahead": answers_ahead.AnswersAhead, "serial": Serial}
    lines = []
    for rep in range(args.reps + 1):  # the last round only measures memory (tracemalloc slows it)
        for name, way in ways.items():
            wall, used, peak = await collect_once(url, ended, work / f"{name}-{rep}", way, rep == args.reps)
            what = f"traced peak {peak:.1f} MiB" if rep == args.reps else f"wall {wall:.2f} s, CPU {used:.2f} s"
            lines.append(f"| {name} | {rep + 1} | {what} |")
            print(lines[-1], flush=True)
    if server is not None:
        server.close()
    return lines


def run_bench(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--chunk", type=int, default=25_000, help="rows per chunk (batch)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--mbps", type=float, default=0.0, help="throttle answers to this many MB/s (0: loopback)")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="llmb-collect-"))
    flags = ("--validating-seconds", "0.2", "--requests-per-second", "10000000", "--finalizing-seconds", "0.1")
    print(f"rows {args.rows:,}, chunks of {args.chunk:,}, relay {args.mbps or 'none'} MB/s; "
          f"load1 {os.getloadavg()[0]:.1f}", flush=True)
    try:
        with emulator_process(*flags) as url:
            asyncio.run(main(args, url, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load1 at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(run_bench())
