"""Memory of recording one batch's requests as in flight (``AnswerCache.record_sent``, what submit does
per chunk with the request cache on), side by side with another checkout.

Each (package, round) runs in a fresh subprocess: ``--rows`` (fingerprint, custom_id) pairs, read from a
generator as submit reads them from the chunk's key index, are recorded into an empty cache on the local
disk. Printed per package: the peak of Python's traced allocations during the call (tracemalloc, over
what was held before it), the growth of the process's peak RSS (``ru_maxrss``) over the call, and the CPU
time of the call (tracemalloc off for that one: a second call, into another empty folder). Also printed:
the bytes one ``orjson.dumps`` result holds (its buffer, whatever the line's length), the cause of the
figure before the fix.

    .venv/bin/python bench/inflight_record.py --rows 50000 --before /tmp/main-copy --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MARK = "INFLIGHT_RECORD "


def _pairs(n: int) -> Iterator[tuple[str, str]]:
    for i in range(n):
        yield f"{i:064x}", f"t_{i:07d}"


def _orjson_bytes() -> float:
    import orjson

    line = {"v": 1, "fingerprint": "ab" * 32, "batch_id": "batch_0123456789abcdef", "custom_id": "t_0000001",
            "sent_at": 1.79e9}
    tracemalloc.start()
    held = [orjson.dumps(line) for _ in range(1_000)]
    size = tracemalloc.get_traced_memory()[0] / len(held)
    tracemalloc.stop()
    return size


def worker(n: int) -> dict[str, Any]:
    from airflow_llm_batch.pipeline.cache import AnswerCache

    with tempfile.TemporaryDirectory() as folder:
        cache = AnswerCache(Path(folder) / "a")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        tracemalloc.start()
        held = tracemalloc.get_traced_memory()[0]
        recorded = cache.record_sent(_pairs(n), "batch_0123456789abcdef", time.time())
        traced = tracemalloc.get_traced_memory()[1] - held
        tracemalloc.stop()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        cpu = time.process_time()
        AnswerCache(Path(folder) / "b").record_sent(_pairs(n), "batch_0123456789abcdef", time.time())
        cpu = time.process_time() - cpu
    return {"recorded": recorded, "traced_mib": traced / 2**20, "rss_mib": rss / 1024,
            "cpu_us_per_row": cpu / n * 1e6, "orjson_bytes": _orjson_bytes()}


def _run(code: Path, n: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(code), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, __file__, "--worker", str(n)], cwd=code, env=env,
                          capture_output=True, text=True, check=True)
    line = next(x for x in proc.stdout.splitlines() if x.startswith(MARK))
    result: dict[str, Any] = json.loads(line[len(MARK):])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=50_000, help="requests in the batch (OpenAI's most: 50,000)")
    ap.add_argument("--before", type=Path, help="another checkout to compare with (e.g. a git archive of main)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        print(MARK + json.dumps(worker(args.worker)), flush=True)
        return
    packages = [("before", args.before)] if args.before else []
    packages.append(("this checkout", ROOT))
    print(f"load average at start: {os.getloadavg()[0]:.2f}; {args.rows:,} requests recorded per call")
    for round_no in range(args.rounds):
        for label, code in packages:
            r = _run(code, args.rows)
            print(f"round {round_no + 1} {label:>13}: traced peak +{r['traced_mib']:.2f} MiB, "
                  f"peak RSS +{r['rss_mib']:.1f} MiB, {r['cpu_us_per_row']:.2f} CPU-us/request, "
                  f"{r['recorded']:,} recorded (one orjson line holds {r['orjson_bytes']:.0f} B)")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
