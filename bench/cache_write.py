"""The request cache's writes (put_many) and hits (get_many), in CPU microseconds per entry.

Root kinds: ``pathlib`` (a local pathlib.Path), ``file`` (an Airflow ObjectStoragePath ``file://``: what
the operator's workspace is) and ``gs`` (gs:// on the bundled GCS emulator, through gcsfs; slow, so
``--gs-entries`` of them). Each (package, kind) runs in a fresh subprocess (the first write of a process
is timed, as at collect): answers are built first (not timed), then ``put_many`` into an empty cache and
``get_many`` of the same fingerprints (all hits) are timed in process CPU time, user and system apart
(the kernel's file creations and renames are system time, and vary tenfold run to run on a shared
VM's ext4: see bench/README.md), and wall time. ``--before DIR`` runs the package found in DIR (e.g.
``git archive main airflow_llm_batch | tar -x -C /tmp/before``) in the same rounds, alternating.

    .venv/bin/python bench/cache_write.py --entries 10000 --before /tmp/main-base --rounds 3
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("pathlib", "file", "gs")
MARK = "CACHE_WRITE "


def _cpu() -> tuple[float, float]:
    """(user, system) CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def _answers(n: int) -> list[tuple[str, Any]]:
    from airflow_llm_batch.pipeline.types import FinishReason, RawResult, Usage

    return [(hashlib.sha256(f"bench {i}".encode()).hexdigest(),
             RawResult(f"row-{i}", ok=True, text=f"answer {i} " * 10, model="gpt-4o-mini", usage=Usage(100, 20, 0),
                       finish_reason=FinishReason.STOP)) for i in range(n)]


def _root(kind: str, folder: Path, stack: list[Any]) -> Any:
    if kind == "pathlib":
        return folder / "cache"
    from airflow_llm_batch.sources.rows import to_path

    if kind == "file":
        return to_path(f"file://{folder}/cache")
    from airflow_llm_batch.google import STORAGE_EMULATOR_ENV
    from airflow_llm_batch.google.emulators import start_gcs_emulator

    gcs = start_gcs_emulator(folder / "gcs")
    stack.append(gcs)
    os.environ[STORAGE_EMULATOR_ENV] = gcs.endpoint
    gcs.client().create_bucket("bench-cache")
    return to_path("gs://bench-cache/cache")


def _timed(fn: Any) -> tuple[Any, dict[str, float]]:
    wall, (user, system) = time.perf_counter(), _cpu()
    result = fn()
    (user_after, system_after), wall = _cpu(), time.perf_counter() - wall
    return result, {"user": user_after - user, "sys": system_after - system, "wall": wall}


def worker(kind: str, n: int) -> None:
    from airflow_llm_batch.pipeline.cache import AnswerCache

    items, folder, stack = _answers(n), Path(tempfile.mkdtemp(dir=os.environ["BENCH_CACHE_DIR"])), []
    try:
        cache = AnswerCache(_root(kind, folder, stack))
        stored, put = _timed(lambda: cache.put_many(items))
        found, get = _timed(lambda: cache.get_many([fp for fp, _ in items]))
        texts = [found[fp].text for fp, _ in items if fp in found]
    finally:
        for process in stack:
            process.stop()  # the files stay until the end: deleting 10,000 files makes the next run's
            # file creations 10-20x dearer in system time on this VM's ext4 (bench/README.md)
    print(MARK + json.dumps({"put_user": put["user"], "put_sys": put["sys"], "put_wall": put["wall"],
                             "get_cpu": get["user"] + get["sys"], "stored": stored, "hits": len(found),
                             "digest": hashlib.sha256("\n".join(map(str, texts)).encode()).hexdigest()}))


def run_one(package: Path, kind: str, n: int, folder: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(package), "BENCH_CACHE_DIR": str(folder)}
    cmd = [sys.executable, __file__, "--worker", kind, "--entries", str(n)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd=package)
    found = [line for line in out.stdout.splitlines() if line.startswith(MARK)]
    if out.returncode != 0 or not found:
        raise SystemExit(f"{kind} in {package} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(found[-1][len(MARK):])
    return result


def _cell(runs: list[dict[str, Any]], key: str, n: int, each: bool = True) -> str:
    """The median over ``runs`` of ``key`` in microseconds per entry (and each run's, if ``each``)."""
    median = f"{1e6 * statistics.median(r[key] for r in runs) / n:.1f}"
    return f"{median} ({', '.join(f'{1e6 * r[key] / n:.0f}' for r in runs)})" if each else median


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=10_000)
    ap.add_argument("--gs-entries", type=int, default=512)
    ap.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    ap.add_argument("--before", type=Path, help="a folder holding another airflow_llm_batch package")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--worker", choices=KINDS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.entries)
        return 0
    packages = ([("before", args.before.resolve())] if args.before else []) + [("now", ROOT)]
    print(f"load average at start: {Path('/proc/loadavg').read_text().split()[:3]}")
    folder = Path(tempfile.mkdtemp(prefix="llmb-bench-cache-write-"))
    try:
        lines = _table(args, packages, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"load average at end: {Path('/proc/loadavg').read_text().split()[:3]}")
    print("\n".join(lines))
    return 0


def _table(args: argparse.Namespace, packages: list[tuple[str, Path]], folder: Path) -> list[str]:
    lines = ["| root | package | entries | put_many user CPU us/entry (median; runs) | put_many system CPU "
             "(median; runs) | put wall | get_many hits CPU | digest |", "|---|---|---:|---|---|---:|---:|---|"]
    for kind in args.kinds:
        n = args.gs_entries if kind == "gs" else args.entries
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in packages}
        for _ in range(args.rounds):
            for name, package in packages:
                runs[name].append(run_one(package, kind, n, folder))
        for name, _ in packages:
            got = runs[name]
            assert all(r["stored"] == n and r["hits"] == n for r in got), got
            lines.append(f"| {kind} | {name} | {n:,} | {_cell(got, 'put_user', n)} | {_cell(got, 'put_sys', n)} | "
                         f"{_cell(got, 'put_wall', n, each=False)} | {_cell(got, 'get_cpu', n, each=False)} | "
                         f"{got[0]['digest'][:12]} |")
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
