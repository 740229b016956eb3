#!/usr/bin/env python
"""CPU per row of ``pipeline.prepare.prepare`` on one core, for three kinds of task (issue 12:
">= 200,000 rows/s on one core" for a plain template).

Variants (OpenAI chat, the real ``OpenAIBatchBackend.request_line``, no network):

- ``plain``: ``prompt="{{ row.text }}"``, key ``id``, cache off;
- ``plain-cache``: the same with the request cache on, as ``BatchRun`` sets it (request fingerprints,
  an ``AnswerCache`` in a temp folder, empty: every row is a miss, looked up and then checked in flight);
- ``schema``: the ticket template of ``prepare_and_parse.py`` (four fields, a system prompt, a strict
  pydantic response schema, params).

Each (variant, package) runs in a fresh subprocess: the rows are built in memory first (not timed),
then only ``prepare()`` is timed (process CPU time and wall). ``--before DIR`` runs the package found
in DIR (e.g. ``git archive main airflow_llm_batch | tar -x -C /tmp/before``) in the same rounds,
alternating with this checkout, and its digest must be the same (the same request lines).

Usage::

    .venv/bin/python bench/prepare_rows.py                                   # 100k rows, 2 rounds
    .venv/bin/python bench/prepare_rows.py --rows 100000 --before /tmp/before --rounds 3
    .venv/bin/python bench/prepare_rows.py --variants plain --profile        # + cProfile (tottime)
"""

from __future__ import annotations

import argparse
import json
import os
import random
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
VARIANTS = ("plain", "plain-cache", "schema")
MARK = "PREPARE_ROWS "
_WORDS = ("the of and to in is you that it he was for on are as with his they at be this have from or one "
          "had by word but not what all were we when your can said there use an each which she do how their "
          "if will up other about out many then them these so some her would make like him into time has look "
          "two more write go see number no way could people my than first water been call who oil its now "
          "find long down day did get come made may part").split()


def plain_rows(n: int) -> list[dict[str, Any]]:
    rnd = random.Random(7)
    return [{"id": f"T-{i:09d}", "text": " ".join(rnd.choices(_WORDS, k=20 + i % 41))} for i in range(n)]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker(variant: str, n: int, profile: bool) -> None:
    from openai import AsyncOpenAI

    from airflow_llm_batch.backends.openai import OpenAIBatchBackend
    from airflow_llm_batch.pipeline.prepare import PrepareOptions, prepare
    from airflow_llm_batch.pipeline.render import RequestSpec

    backend = OpenAIBatchBackend(AsyncOpenAI(api_key="x", base_url="http://127.0.0.1:9/v1"))
    spec = RequestSpec(model="gpt-4o-mini", prompt="{{ row.text }}", key="id")
    rows: list[dict[str, Any]] = plain_rows(n)
    options = PrepareOptions()
    folder = Path(tempfile.mkdtemp(prefix="bench-prepare-rows-"))
    if variant == "schema":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import prepare_and_parse as pp

        from airflow_llm_batch.pipeline.parsing import OutputParser

        parser = OutputParser(pp._model())
        spec = RequestSpec(model="gpt-4o-mini", prompt=pp.PROMPT, system_prompt=pp.SYSTEM_PROMPT, key="id",
                           params={"temperature": 0, "max_completion_tokens": 300},
                           response_schema=parser.schema, schema_name=parser.name, context={"company": "Acme"})
        rows = list(pp.synthetic_rows(n))
    elif variant == "plain-cache":
        options = _cache_options(backend, folder / "cache")
    run = lambda: prepare(rows, spec, folder=folder / "run", backend=backend, options=options)  # noqa: E731
    wall, cpu = time.perf_counter(), _cpu()
    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prepared = prof.runcall(run)
        pstats.Stats(prof, stream=sys.stderr).sort_stats(os.environ.get("BENCH_SORT", "tottime")).print_stats(25)
    else:
        prepared = run()
    cpu, wall = _cpu() - cpu, time.perf_counter() - wall
    shutil.rmtree(folder, ignore_errors=True)
    print(MARK + json.dumps({"cpu": cpu, "wall": wall, "digest": prepared.digest, "rows": prepared.total_rows}))


def _cache_options(backend: Any, root: Path) -> Any:
    from airflow_llm_batch.pipeline.cache import AnswerCache
    from airflow_llm_batch.pipeline.fingerprint import endpoint_identity, request_fingerprint
    from airflow_llm_batch.pipeline.prepare import PrepareOptions

    cache, endpoint = AnswerCache(root), endpoint_identity(backend)
    retention = backend.limits.results_retention_seconds
    return PrepareOptions(fingerprint=lambda line: request_fingerprint(backend.name, line, endpoint), cache=cache,
                          in_flight=lambda fps: dict(cache.find_in_flight(fps, max_age=retention)))


def run_one(package: Path, variant: str, n: int, profile: bool) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(package)}
    cmd = [sys.executable, __file__, "--worker", variant, "--rows", str(n)] + (["--profile"] if profile else [])
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd=package)
    if profile:
        sys.stderr.write(out.stderr)
    found = [line for line in out.stdout.splitlines() if line.startswith(MARK)]
    if out.returncode != 0 or not found:
        raise SystemExit(f"{variant} in {package} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(found[-1][len(MARK):])
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    ap.add_argument("--before", type=Path, help="a folder holding another airflow_llm_batch package")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.rows, args.profile)
        return 0
    packages = ([("before", args.before.resolve())] if args.before else []) + [("now", ROOT)]
    print(f"load average at start: {Path('/proc/loadavg').read_text().split()[:3]}")
    lines = ["| variant | package | CPU us/row (median) | rows/s per core | runs (CPU s) | digest |",
             "|---|---|---:|---:|---|---|"]
    for variant in args.variants:
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in packages}
        for _ in range(args.rounds):
            for name, package in packages:
                runs[name].append(run_one(package, variant, args.rows, args.profile))
        for name, _ in packages:
            cpu = statistics.median(r["cpu"] for r in runs[name])
            each = ", ".join(f"{r['cpu']:.2f}" for r in runs[name])
            lines.append(f"| {variant} | {name} | {1e6 * cpu / args.rows:.1f} | {args.rows / cpu:,.0f} | "
                         f"{each} | {runs[name][0]['digest'][:12]} |")
    print(f"load average at end: {Path('/proc/loadavg').read_text().split()[:3]}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
