#!/usr/bin/env python
"""End to end, as a new user runs it: ``airflow dags test`` of one ``LLMBatchOperator`` over N rows.

Side by side in one run, on the same emulator (its own process, loopback, OpenAI batches complete
~5 s after creation: 4.8 s validating, then every request at once, 0.2 s finalizing):

- **this package**: ``airflow dags test bench_llm_batch`` -- one ``LLMBatchOperator`` task, rows from a
  JSONL file, ``prompt="{{ row.text }}"``, 1-s polls (deferred: the trigger runs in line), cache off
  (``--cache``: on, the operator's default), results to a JSONL file;
- **floor**: ``bench/floor_openai.py``, a hand-written serial script with the official SDK (no Airflow);
- **Airflow no-op**: ``airflow dags test bench_noop``, one ``EmptyOperator`` task.

Each job runs in a fresh measuring wrapper process, so its wall time and peak RSS (``ru_maxrss`` of
its children: the largest process) are its own. A temp AIRFLOW_HOME (SQLite, migrated once, not
timed); every process started is stopped.

Usage::

    .venv/bin/python bench/e2e.py                            # 10,000 rows
    .venv/bin/python bench/e2e.py --rows 10000 100000 1000000
    .venv/bin/python bench/e2e.py --rows 200 --out /tmp/e2e.md                # smoke
    .venv/bin/python bench/e2e.py --rows 10000 100000 --before /tmp/main-copy   # + the code in that
                                                   # folder (e.g. ``git archive main | tar -x -C ...``)

With ``--before DIR`` each size first runs the task with the package imported from ``DIR`` (put first
on PYTHONPATH for the ``airflow`` processes; same venv, same emulator), then with this checkout.

Each task run (and the no-op) is also split into stages from its own log (``bench/e2e_stages.py``:
Airflow start, task start, prepare, submit, batch wait, resume, collect, land, task end), with the peak
RSS of each stage (its processes' VmRSS sampled every 0.2 s), so a figure reads "X s plus the batch wait
Y s". The whole log of each job is kept in ``bench/out/e2e-<job>-<N>.log``.

The Markdown tables are printed and written to ``bench/out/e2e.md`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e_stages import STAGES, RssSampler, split_cells, stage_peaks, stage_split
from trigger_load import emulator_process

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = Path(__file__).resolve().parent / "out"
RESULT_MARK = "BENCH_RESULT "
CONN_ID = "bench_openai"
LOAD_AT_START = os.getloadavg()[0]

DAGS = '''
from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from airflow_llm_batch.operators import LLMBatchOperator

for dag_id, cache in (("bench_llm_batch", "off"), ("bench_llm_batch_cache", "read_write")):
    with DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
        LLMBatchOperator(
            task_id="llm_batch",
            provider="openai",
            conn_id="bench_openai",
            model="gpt-4o-mini",
            rows="{{ dag_run.conf['rows'] }}",
            key="id",
            prompt="{{ row.text }}",
            cache=cache,
            workspace="{{ dag_run.conf['workspace'] }}",
            destination="{{ dag_run.conf['destination'] }}",
            poll_interval=1.0,
        )

with DAG(dag_id="bench_noop", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    EmptyOperator(task_id="noop")
'''

_WORDS = ("please summarise this short customer message about an order that arrived late and the box was "
          "damaged but the product works fine thanks a lot").split()


def write_rows(path: Path, n: int) -> None:
    with path.open("w") as fh:
        for i in range(n):
            words = " ".join(_WORDS[(i + k) % len(_WORDS)] for k in range(12 + i % 9))
            fh.write(json.dumps({"id": f"r{i:08d}", "text": f"{i}: {words}"}) + "\n")


def count_succeeded(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open() as fh:
        return sum(json.loads(line).get("status") == "succeeded" for line in fh if line.strip())


def measure_child(cmd: list[str]) -> None:
    """Wrapper mode: run ``cmd``, then print its wall time and the peak RSS of its process tree's largest process."""
    start, began = time.perf_counter(), time.time()
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
        sampler = RssSampler(proc.pid)  # the RSS of its processes every 0.2 s: the peak of each stage
        while proc.poll() is None:
            sampler.sample()
            time.sleep(0.2)
        wall = time.perf_counter() - start
        log.seek(0)
        out = log.read()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(RESULT_MARK + json.dumps({"wall": wall, "peak_kib": usage.ru_maxrss, "rc": proc.returncode,
                                    "cpu": usage.ru_utime + usage.ru_stime,
                                    "stages": stage_split(out, began, began + wall),
                                    "stage_mib": stage_peaks(out, began, began + wall, sampler.samples),
                                    "tail": out[-3000:], "log": out}), flush=True)


def timed(cmd: list[str], env: dict[str, str], log_name: str | None = None) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--measure", "--", *cmd], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=False)
    line = next((x for x in proc.stdout.splitlines() if x.startswith(RESULT_MARK)), None)
    if line is None:
        raise SystemExit(f"measuring {cmd[:3]} failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(line[len(RESULT_MARK):])
    log = result.pop("log")
    if log_name is not None:  # the whole log, for a look at where the time went
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        (OUT_DIR / log_name).write_text(log)
    return result


def airflow_env(work: Path, url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(work / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(work / "dags"),
        AIRFLOW__API_AUTH__JWT_SECRET="bench-" + "x" * 64,
        AIRFLOW__API__HOST="127.0.0.1",
        **{f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(
            {"conn_type": "openai", "password": "bench-key", "host": f"{url}/v1"})},
    )
    return env


def airflow_cmd() -> str:
    return str(Path(sys.executable).parent / "airflow")


def run_package(n: int, rows: Path, work: Path, env: dict[str, str], day: int,
                code: Path | None = None) -> dict[str, Any]:
    """One task over ``rows``; with ``code``, the package is imported from that checkout instead. With
    ``BENCH_E2E_CACHE=1`` in ``env`` (``--cache``), the task has the request cache on, the operator's default
    (an empty cache in its fresh workspace: every row a miss, every answer stored)."""
    label = "before" if code else "pkg"
    dest = work / f"results-{label}-{n}.jsonl"
    if code is not None:
        env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(code), env.get("PYTHONPATH", "")]))}
    conf = {"rows": f"file://{rows}", "workspace": f"file://{work}/workspace-{label}-{n}",
            "destination": f"file://{dest}"}
    dag_id = "bench_llm_batch_cache" if env.get("BENCH_E2E_CACHE") == "1" else "bench_llm_batch"
    r = timed([airflow_cmd(), "dags", "test", dag_id, f"2026-11-{day:02d}", "--conf", json.dumps(conf)], env,
              f"e2e-{label}-{n}.log")
    r["succeeded"] = count_succeeded(dest)
    return r


def run_floor(n: int, rows: Path, work: Path, env: dict[str, str], url: str) -> dict[str, Any]:
    dest = work / f"floor-{n}.jsonl"
    r = timed([sys.executable, str(ROOT / "bench" / "floor_openai.py"), "--rows", str(rows),
               "--base-url", f"{url}/v1", "--out", str(dest)], env)
    r["succeeded"] = count_succeeded(dest)
    return r


def run_jobs(sizes: list[int], work: Path, skip_floor: bool, before: Path | None = None) -> list[dict[str, Any]]:
    (work / "dags").mkdir(parents=True)
    (work / "dags" / "bench_dags.py").write_text(DAGS)
    flags = ("--validating-seconds", "4.8", "--requests-per-second", "10000000", "--finalizing-seconds", "0.2")
    jobs: list[dict[str, Any]] = []
    with emulator_process(*flags) as url:
        env = airflow_env(work, url)
        migrate = subprocess.run([airflow_cmd(), "db", "migrate"], env=env, capture_output=True, text=True, check=False)
        if migrate.returncode != 0:
            raise SystemExit(f"airflow db migrate failed: {migrate.stdout[-2000:]}{migrate.stderr[-2000:]}")
        noop = timed([airflow_cmd(), "dags", "test", "bench_noop"], env, "e2e-noop.log")
        jobs.append({"job": "Airflow no-op", "n": 0, **noop})
        _report(jobs[-1])
        for day, n in enumerate(sizes, start=1):
            rows = work / f"rows-{n}.jsonl"
            write_rows(rows, n)
            if before is not None:
                jobs.append({"job": "before", "n": n, **run_package(n, rows, work, env, 2 * day, before)})
                _report(jobs[-1])
            jobs.append({"job": "this package", "n": n, **run_package(n, rows, work, env, 2 * day + 1)})
            _report(jobs[-1])
            if not skip_floor:
                jobs.append({"job": "floor", "n": n, **run_floor(n, rows, work, env, url)})
                _report(jobs[-1])
            rows.unlink()
    return jobs


def _report(job: dict[str, Any]) -> None:
    ok = job["rc"] == 0 and (job["n"] == 0 or job.get("succeeded") == job["n"])
    print(f"{job['job']:<14} N={job['n']:>9,}: {job['wall']:6.1f} s (CPU {job['cpu']:.1f} s), "
          f"peak RSS {job['peak_kib'] / 1024:6.0f} MiB, "
          f"exit {job['rc']}, succeeded {job.get('succeeded', '-')}{'' if ok else '  FAILED'}", flush=True)
    if job["job"] in ("this package", "before"):
        print("    stages: " + ", ".join(f"{s} {job['stages'][s]:.1f} s ({job['stage_mib'][s]:.0f} MiB)"
                                      for s in STAGES), flush=True)
    if not ok:
        print(job["tail"], flush=True)


def table(jobs: list[dict[str, Any]]) -> list[str]:
    def cell(job: dict[str, Any] | None) -> str:
        if job is None:
            return ""
        ok = job["rc"] == 0 and (job["n"] == 0 or job.get("succeeded") == job["n"])
        return (f"{job['wall']:.1f} s (CPU {job['cpu']:.1f} s), {job['peak_kib'] / 1024:.0f} MiB"
                + ("" if ok else " (FAILED)"))

    def find(n: int, name: str) -> dict[str, Any] | None:
        return next((j for j in jobs if j["n"] == n and j["job"] == name), None)

    noop = find(0, "Airflow no-op")
    before = any(j["job"] == "before" for j in jobs)
    lines = ["| job |" + (" before |" if before else "") + " this package | floor | Airflow no-op |",
             "|---|" + ("---|" if before else "") + "---|---|---|"]
    sizes = sorted({j["n"] for j in jobs if j["n"]})
    for i, n in enumerate(sizes):
        first = f" {cell(find(n, 'before'))} |" if before else ""
        lines.append(f"| {n:,} rows, one task |{first} {cell(find(n, 'this package'))} | {cell(find(n, 'floor'))} | "
                     f"{cell(noop) if i == 0 else ''} |")
    return lines


def stage_table(jobs: list[dict[str, Any]]) -> list[str]:
    """Seconds per stage of each task run, from its own log (bench/e2e_stages.py)."""
    runs = [j for j in jobs if j["job"] in ("this package", "before", "Airflow no-op")]
    if not runs:
        return []
    lines = ["| task | rows |" + "".join(f" {s} |" for s in STAGES) + " wall | wall - batch wait |",
             "|---|---:|" + "---:|" * (len(STAGES) + 2)]
    for j in runs:
        lines.append(f"| {j['job']} | {j['n']:,} |{split_cells(j['stages'])} {j['wall']:.1f} | "
                     f"{j['wall'] - j['stages']['batch wait']:.1f} |")
    lines += ["", "Peak RSS during each stage (MiB, sampled every 0.2 s):", "",
              "| task | rows |" + "".join(f" {s} |" for s in STAGES) + " peak (ru_maxrss) |",
              "|---|---:|" + "---:|" * (len(STAGES) + 1)]
    for j in runs:
        lines.append(f"| {j['job']} | {j['n']:,} |{split_cells(j['stage_mib'], '{:.0f}')} {j['peak_kib'] / 1024:.0f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--measure"]:
        measure_child(argv[2:] if argv[1:2] == ["--"] else argv[1:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000], help="row counts N")
    ap.add_argument("--skip-floor", action="store_true")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT_DIR / "e2e.md")
    ap.add_argument("--before", type=Path, default=None,
                    help="a checkout of the package (its root folder) to run side by side, first")
    ap.add_argument("--cache", action="store_true",
                    help="the task with the request cache on (the operator's default; the figures above are "
                         "with cache='off', as the floor script has none)")
    args = ap.parse_args(argv)
    if args.cache:
        os.environ["BENCH_E2E_CACHE"] = "1"
    work = Path(tempfile.mkdtemp(prefix="llmb-e2e-", dir=args.workdir))
    try:
        jobs = run_jobs(args.rows, work, args.skip_floor, args.before.resolve() if args.before else None)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    compared = (f"; before = {args.before}" if args.before else "") + ("; request cache on" if args.cache else "")
    doc = ["# e2e benchmark", "",
           f"- {time.strftime('%Y-%m-%d %H:%M:%S')}, os.cpu_count()={os.cpu_count()}, load1 {os.getloadavg()[0]:.1f} "
           f"at the end (load1 at the start: {LOAD_AT_START:.1f}){compared}",
           "- emulator batches complete ~5 s after creation; 1-s polls; per job: wall time (CPU time of its "
           "processes: less sensitive to other load on the machine), peak RSS of its largest process", "",
           *table(jobs), "", "Stage split of each task run (seconds, from its log; see bench/e2e_stages.py):", "",
           *stage_table(jobs), ""]
    text = "\n".join(doc)
    print("\n" + text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    failed = [j for j in jobs if j["rc"] != 0 or (j["n"] and j.get("succeeded") != j["n"])]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
