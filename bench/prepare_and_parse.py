#!/usr/bin/env python
"""Benchmark of the two row-proportional passes of a batch run: ``prepare`` and the collect path.

For every N (default 100,000 and 1,000,000) three phases each run in a FRESH subprocess, so
``ru_maxrss`` (the peak resident set size) is the peak of that phase at that N only:

1. ``prepare``: N synthetic rows from a generator (never a list) -> ``pipeline.prepare.prepare``
   with the real ``OpenAIBatchBackend.request_line`` (chat endpoint, Jinja prompt + system prompt,
   pydantic response schema in strict JSON-schema mode), OpenAI limits (50,000 requests per chunk).
2. ``synth`` (harness, not library code): for each chunk, the provider output file OpenAI would
   return -- one line per request, SHUFFLED, with a chat completion whose content is valid JSON for
   the schema, plus usage -- written to a local file.
3. ``collect``: the worker's collect path of ``pipeline.run.BatchRun.collect`` for each chunk:
   the package's own ``answers_ahead.fetch_answers`` over its own ``OpenAIBatchBackend``, whose client
   serves the output file in 64 KiB pieces (``bench/local_download.py``: every step of a real collect
   from the downloaded bytes on, the async iteration included; before issue 12's collectblocks the bench
   read the file in a plain loop, which left out ~0.5 us per row of async steps) into the per-chunk
   answer dict, then
   ``classify_chunk(read_key_index(...), answers, OutputParser(Model), JoinContext(batch_id, ...))`` -> its
   ``final_records()`` -> results JSONL written by ``answered.write_results``, priced as
   ``Collector.store_chunk`` writes them (the join pricing the plain records; a ``--before`` package
   without pricing at collect writes them unpriced).

4. ``land``: what ``operators/landing.land`` does for a ``file://`` JSONL destination
   (``landing.land_results`` with the manifest the collector leaves): each results file priced at
   collect copied as it is; with an older ``--before`` package, every results file read back
   (``RunFolder`` on an ObjectStoragePath, as the operator's workspace), each row's cost added, written
   by ``ObjectStorageSink``.

Collect and land are timed on per-row work only: each first runs its whole path once on one row into
a scratch file (removed), outside the timer, so the one-time imports the first write through
ObjectStoragePath triggers (``storage.untracked`` records the lineage asset once per file, which loads
Airflow's lineage machinery: ~0.15-0.5 s of CPU) are not counted; a task has them loaded already.
``--cold`` skips that warm-up (the measurement before issue 12's collectland work). The timed collect
runs with Python's cyclic garbage collector paused when the package under test pauses it in
``Collector.collect`` (``pipeline/gc_pause.py``; a ``--before`` package without it keeps it on, as it
did). ``--gc-paused`` also pauses it for land (a what-if, not what the package does).

``--plain``: a plain ``{{ row.body }}`` template and plain-text answers, no response schema (issue 12's
goal). ``--before DIR``: collect and land run first with the package of another checkout ``DIR`` (same
data, same run), then with this one. Collect and land read and write the workspace through Airflow's
ObjectStoragePath, as a task does.

Usage::

    .venv/bin/python bench/prepare_and_parse.py                        # 100k and 1M
    .venv/bin/python bench/prepare_and_parse.py --rows 100000 --plain --before /tmp/main-copy
    .venv/bin/python bench/prepare_and_parse.py --rows 100000 --plain --before /tmp/main-copy --cold
    .venv/bin/python bench/prepare_and_parse.py --rows 20000 200000
    .venv/bin/python bench/prepare_and_parse.py --rows 100000 --profile       # cProfile, top 25
    .venv/bin/python bench/prepare_and_parse.py --rows 20000 200000 --tracemalloc

The Markdown table is printed and written to ``bench/out/prepare_and_parse.md`` (git-ignored).
``--profile`` and ``--tracemalloc`` slow everything down: their rows/s and RSS are not the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from local_download import local_backend  # noqa: E402 - bench/ is the script's folder

DEFAULT_ROWS = (100_000, 1_000_000)
PHASES = ("prepare", "synth", "collect", "land")
#: the phases ``--before DIR`` runs twice: with the package of DIR, then with this one
COMPARED = ("collect", "land")
PLAIN_PROMPT = "{{ row.body }}"
OUT_DIR = Path(__file__).resolve().parent / "out"
RESULT_MARK = "BENCH_RESULT "
BATCH_PREFIX = "batch_bench"

PROMPT = (
    "Classify this support ticket.\n"
    "Subject: {{ row.subject }}\n"
    "Customer plan: {{ row.plan }} | language: {{ row.lang }}\n"
    "{{ row.body }}"
)
SYSTEM_PROMPT = "You triage support tickets for {{ company }}. Answer with the requested JSON only."

_WORDS = (
    "account billing card charge refund invoice login password reset error crash slow app page order "
    "delivery late missing broken screen update install please help urgent again since yesterday the my "
    "cannot still not working twice payment subscription cancel upgrade email address phone number"
).split()
_SUBJECTS = ("Refund request", "Cannot log in", "App crashes on start", "Order is late", "Double charge",
             "Change my email", "Invoice missing", "Upgrade question", "Password reset fails", "Other")
_PLANS = ("free", "pro", "business", "enterprise")
_LANGS = ("en", "fr", "de", "es", "it", "pt", "nl")
_CATEGORIES = ("billing", "account", "bug", "delivery", "other")


# -- shared by the phases (imported lazily so the parent process stays light) -------------------------------
def _plain() -> bool:
    """``--plain``: a plain template and plain-text answers (no response schema), as issue 12's goal."""
    return os.environ.get("BENCH_PLAIN") == "1"


def _cold() -> bool:
    """``--cold``: no warm-up before the timed collect and land (one-time imports counted, as before)."""
    return os.environ.get("BENCH_COLD") == "1"


def _cache() -> bool:
    """``--cache``: the request cache on, as the operator's default (fingerprints in the key index, an
    empty cache looked up at prepare, the answers stored in it at collect)."""
    return os.environ.get("BENCH_CACHE") == "1"


def _answer_cache(folder: Path) -> Any:
    from airflow_llm_batch.pipeline.cache import AnswerCache

    root: Any = folder / "cache" / "v1" / "openai"  # a pathlib.Path (mypy does not match it to StoragePath)
    return AnswerCache(root)


def _prepare_options(backend: Any, folder: Path) -> Any:
    """What ``BatchRun`` gives ``prepare`` with the request cache on (``--cache``), else the defaults."""
    from airflow_llm_batch.pipeline.fingerprint import endpoint_identity, request_fingerprint
    from airflow_llm_batch.pipeline.prepare import PrepareOptions

    if not _cache():
        return PrepareOptions()
    cache, endpoint = _answer_cache(folder), endpoint_identity(backend)
    retention = backend.limits.results_retention_seconds
    return PrepareOptions(fingerprint=lambda line: request_fingerprint(backend.name, line, endpoint), cache=cache,
                          in_flight=lambda fps: dict(cache.find_in_flight(fps, max_age=retention)))


def _gc_paused() -> bool:
    """``--gc-paused``: the cyclic garbage collector off for the timed collect and land (a what-if)."""
    return os.environ.get("BENCH_GC_PAUSED") == "1"


def _collector_pauses_gc() -> bool:
    """Whether the package under test pauses the cyclic GC while it collects (``Collector.collect``
    since issue 12's last round, pipeline/gc_pause.py): the bench's collect then does the same."""
    import importlib.util

    return importlib.util.find_spec("airflow_llm_batch.pipeline.gc_pause") is not None


def _model() -> Any:
    if _plain():
        return None
    from typing import Literal

    from pydantic import BaseModel, Field

    class Triage(BaseModel):
        category: Literal["billing", "account", "bug", "delivery", "other"]
        priority: int = Field(ge=1, le=5)
        summary: str = Field(max_length=200)
        tags: list[str]
        needs_human: bool

    return Triage


def synthetic_rows(n: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """N ticket-like rows, produced one at a time (never materialised as a list)."""
    rnd = random.Random(seed)
    choices, words = rnd.choices, _WORDS
    for i in range(n):
        yield {
            "id": f"T-{i:09d}",
            "subject": _SUBJECTS[i % len(_SUBJECTS)],
            "plan": _PLANS[i % len(_PLANS)],
            "lang": _LANGS[i % len(_LANGS)],
            "body": " ".join(choices(words, k=20 + i % 41)),
        }


def _peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Tracer:
    """Optional tracemalloc probes: snapshots at chosen moments, diffed against the first one."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.snaps: list[tuple[str, Any]] = []
        if enabled:
            import tracemalloc

            tracemalloc.start(4)

    def snap(self, label: str) -> None:
        if self.enabled:
            import tracemalloc

            current, peak = tracemalloc.get_traced_memory()
            self.snaps.append((f"{label} (traced {current / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB)",
                               tracemalloc.take_snapshot()))

    def report(self, top: int = 12) -> list[str]:
        if not self.enabled or len(self.snaps) < 2:
            return []
        import tracemalloc

        flt = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen *>")]
        first_label, first = self.snaps[0]
        lines = [f"tracemalloc first probe: {first_label}"]
        for label, snap in self.snaps[1:]:
            lines.append(f"growth from the first probe to: {label}")
            stats = snap.filter_traces(flt).compare_to(first.filter_traces(flt), "traceback")
            for stat in stats[:top]:
                if stat.size_diff <= 0:
                    continue
                frames = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(stat.traceback))
                lines.append(f"  {stat.size_diff / 1024:+10.1f} KiB {stat.count_diff:+8d} blocks  {frames}")
        return lines


class _Probe:
    """Wraps the row generator to take tracemalloc snapshots at given row numbers during prepare."""

    def __init__(self, rows: Iterable[dict[str, Any]], at: dict[int, str], tracer: _Tracer) -> None:
        self.rows, self.at, self.tracer = rows, at, tracer

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i, row in enumerate(self.rows):
            if i in self.at:
                self.tracer.snap(self.at[i])
            yield row


# -- the three phases, each in its own subprocess ---------------------------------------------------------
def phase_prepare(n: int, folder: Path, tracer: _Tracer) -> dict[str, Any]:
    from openai import AsyncOpenAI

    from airflow_llm_batch.backends.openai import OpenAIBatchBackend
    from airflow_llm_batch.pipeline.parsing import OutputParser
    from airflow_llm_batch.pipeline.prepare import prepare
    from airflow_llm_batch.pipeline.render import RequestSpec

    backend = OpenAIBatchBackend(AsyncOpenAI(api_key="x", base_url="http://127.0.0.1:9/v1"))
    parser = OutputParser(_model())
    plain = _plain()
    spec = RequestSpec(model="gpt-4o-mini", prompt=PLAIN_PROMPT if plain else PROMPT,
                       system_prompt=None if plain else SYSTEM_PROMPT, key="id",
                       params={"temperature": 0, "max_completion_tokens": 300},
                       response_schema=parser.schema, schema_name=parser.name, context={"company": "Acme"})
    baseline = _peak_kib()
    rows: Iterable[dict[str, Any]] = synthetic_rows(n)
    if tracer.enabled:
        rows = _Probe(rows, {max(1, n // 5): f"row {n // 5:,}", n - 1: f"row {n - 1:,}"}, tracer)
    start, cpu0 = time.perf_counter(), _cpu()
    workspace: Any = folder  # a pathlib.Path (mypy does not match it to the StoragePath protocol)
    prepared = prepare(rows, spec, folder=workspace, backend=backend, options=_prepare_options(backend, folder))
    seconds, cpu = time.perf_counter() - start, _cpu() - cpu0
    peak = _peak_kib()
    tracer.snap("after prepare() returned")
    assert prepared.total_rows == n, prepared.total_rows
    (folder / "bench_chunks.json").write_text(json.dumps(
        [{"index": c.index, "count": c.count, "requests": c.requests, "keys": c.keys} for c in prepared.chunks]))
    # what the row generator alone costs, measured on up to 100k rows after the timed pass
    sample = min(n, 100_000)
    t0 = time.perf_counter()
    for _ in synthetic_rows(sample):
        pass
    gen_rate = sample / (time.perf_counter() - t0)
    request_bytes = sum(c.bytes for c in prepared.chunks)
    return {"seconds": seconds, "cpu_seconds": cpu, "baseline_kib": baseline, "peak_kib": peak,
            "notes": f"{len(prepared.chunks)} chunks, {request_bytes / n:.0f} B/request line, "
                     f"row generator alone {gen_rate:,.0f} rows/s"}


def _answer_for(custom_id: str, rnd: random.Random) -> str:
    if _plain():
        return (f"Ticket {custom_id} is about {rnd.choice(_CATEGORIES)}; priority {rnd.randint(1, 5)}. "
                + " ".join(rnd.sample(_WORDS, k=rnd.randint(5, 15))))
    answer = {
        "category": rnd.choice(_CATEGORIES),
        "priority": rnd.randint(1, 5),
        "summary": f"Ticket {custom_id}: customer reports a problem and asks for help.",
        "tags": rnd.sample(_WORDS, k=rnd.randint(1, 4)),
        "needs_human": rnd.random() < 0.3,
    }
    return json.dumps(answer)


def phase_synth(n: int, folder: Path, tracer: _Tracer) -> dict[str, Any]:
    """What OpenAI writes as a batch's output file: shuffled lines, each a full chat completion."""
    chunks = json.loads((folder / "bench_chunks.json").read_text())
    (folder / "outputs").mkdir(exist_ok=True)
    baseline = _peak_kib()
    start, cpu0 = time.perf_counter(), _cpu()
    created = 1_790_000_000
    total = 0
    for chunk in chunks:
        rnd = random.Random(1000 + chunk["index"])
        lines: list[bytes] = []
        with (folder / chunk["requests"]).open("rb") as fh:
            for raw in fh:
                request = json.loads(raw)
                prompt_tokens = sum(len(m["content"]) for m in request["body"]["messages"]) // 4
                content = _answer_for(request["custom_id"], rnd)
                completion_tokens = len(content) // 4
                line = {
                    "id": f"batch_req_{rnd.getrandbits(96):024x}",
                    "custom_id": request["custom_id"],
                    "response": {
                        "status_code": 200,
                        "request_id": f"{rnd.getrandbits(128):032x}",
                        "body": {
                            "id": f"chatcmpl-{rnd.getrandbits(120):030x}",
                            "object": "chat.completion",
                            "created": created,
                            "model": "gpt-4o-mini-2024-07-18",
                            "choices": [{
                                "index": 0,
                                "message": {"role": "assistant", "content": content, "refusal": None,
                                            "annotations": []},
                                "logprobs": None,
                                "finish_reason": "stop",
                            }],
                            "usage": {
                                "prompt_tokens": prompt_tokens,
                                "completion_tokens": completion_tokens,
                                "total_tokens": prompt_tokens + completion_tokens,
                                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                              "accepted_prediction_tokens": 0,
                                                              "rejected_prediction_tokens": 0},
                            },
                            "service_tier": "default",
                            "system_fingerprint": "fp_0123456789",
                        },
                    },
                    "error": None,
                }
                lines.append((json.dumps(line) + "\n").encode())
        rnd.shuffle(lines)  # the provider returns answers in any order
        with (folder / "outputs" / f"{chunk['index']:05d}.output.jsonl").open("wb") as out:
            out.writelines(lines)
        total += len(lines)
        del lines
    seconds, cpu = time.perf_counter() - start, _cpu() - cpu0
    assert total == n, total
    return {"seconds": seconds, "cpu_seconds": cpu, "baseline_kib": baseline, "peak_kib": _peak_kib(),
            "notes": "harness only: one chunk's output lines are held to shuffle them"}


def phase_collect(n: int, folder: Path, tracer: _Tracer) -> dict[str, Any]:
    """BatchRun.collect for every chunk, with the download replaced by reading the local output file."""
    from collections import Counter

    from airflow.sdk import ObjectStoragePath

    from airflow_llm_batch.backends import openai as openai_backend
    from airflow_llm_batch.pipeline.answered import write_results
    from airflow_llm_batch.pipeline.answers_ahead import fetch_answers
    from airflow_llm_batch.pipeline.join import JoinContext, classify_chunk
    from airflow_llm_batch.pipeline.key_index import read_key_index
    from airflow_llm_batch.pipeline.parsing import OutputParser
    from airflow_llm_batch.pipeline.types import RawResult

    backend = local_backend(openai_backend, folder / "outputs")  # the package's OpenAIBatchBackend, local files
    # one loop for every chunk, as the collector's task has (not asyncio.run per chunk: on leaving, its SIGINT
    # check formats the main task's repr, whose result, the answers dict, reprlib sorts: ~0.3 us per row)
    loop = asyncio.new_event_loop()
    chunks = json.loads((folder / "bench_chunks.json").read_text())
    parser = OutputParser(_model())
    (folder / "results").mkdir(exist_ok=True)
    workspace = ObjectStoragePath(f"file://{folder}")  # what the operator's workspace is (operators/paths.py)
    baseline = _peak_kib()
    totals: Counter[str] = Counter()
    collected: list[dict[str, Any]] = []
    cache = _answer_cache(folder) if _cache() else None
    read_s = join_s = 0.0
    tracer.snap("before the first chunk")
    start, cpu0 = time.perf_counter(), _cpu()
    for chunk in chunks:
        t0 = time.perf_counter()
        # the package's own results reading and answer gathering, from the downloaded bytes on
        batch_id = f"{BATCH_PREFIX}_{chunk['index']:05d}"
        answers: dict[str, RawResult] = loop.run_until_complete(fetch_answers(backend, batch_id, True))
        t1 = time.perf_counter()
        if chunk["index"] in (0, len(chunks) - 1):
            tracer.snap(f"chunk {chunk['index']}: {len(answers):,} answers decoded, before the join")
        context, priced = _collect_context(JoinContext, f"{BATCH_PREFIX}_{chunk['index']:05d}")
        outcome = classify_chunk(read_key_index(workspace / chunk["keys"]), answers, parser, context)
        counts = write_results(workspace / "results" / f"{chunk['index']:05d}.jsonl", _final(outcome), **priced)
        if cache is not None:  # what Collector._store_answers does with the cache on
            cache.put_many(outcome.to_cache)
        collected.append({"index": chunk["index"], "count": chunk["count"], "counts": counts})
        totals.update(counts)
        read_s += t1 - t0
        join_s += time.perf_counter() - t1
        del answers, outcome
    seconds, cpu = time.perf_counter() - start, _cpu() - cpu0
    loop.close()
    assert totals["succeeded"] == n and totals["failed"] == 0, dict(totals)
    (folder / "bench_collected.json").write_text(json.dumps({"priced": _prices_at_collect(), "chunks": collected}))
    return {"seconds": seconds, "cpu_seconds": cpu, "baseline_kib": baseline, "peak_kib": _peak_kib(),
            "notes": f"download+decode {read_s:.3f} s, join+parse+write {join_s:.3f} s; "
                     f"{totals['succeeded']:,} succeeded{_compare_with_before(folder)}"}


def _compare_with_before(folder: Path) -> str:
    """After the timed collect: the ``--before`` run moves its results files aside; the run after it writes
    its own afresh (as the first did: replacing files costs CPU) and checks they are byte-identical to
    them (it stops the bench when they are not)."""
    import filecmp

    kept = folder / "results-before"
    if os.environ.get("BENCH_PACKAGE_ROOT"):  # moved away: the next collect writes new files, as this one did
        shutil.rmtree(kept, ignore_errors=True)
        (folder / "results").rename(kept)
        (folder / "results").mkdir()
        return ""
    if not kept.is_dir():
        return ""
    names = sorted(p.name for p in (folder / "results").glob("*.jsonl"))
    assert names == sorted(p.name for p in kept.glob("*.jsonl")), "results files differ from --before's"
    differ = [name for name in names if not filecmp.cmp(folder / "results" / name, kept / name, shallow=False)]
    assert not differ, f"results files not byte-identical to --before's: {differ}"
    shutil.rmtree(kept)
    return f"; {len(names)} results files byte-identical to --before's"


def _collect_context(join_context: Any, batch_id: str) -> tuple[Any, dict[str, Any]]:
    """The join context and ``write_results`` arguments ``Collector.store_chunk`` gives a chunk: priced
    at collect when the package does it (the join pricing its plain records itself when it can), else
    (an older ``--before`` package) unpriced."""
    import dataclasses

    if not _prices_at_collect():
        return join_context(batch_id, cache_answers=_cache()), {}
    from airflow_llm_batch.pipeline.record_cost import RecordPricer

    price = _price()
    if "pricer" in {f.name for f in dataclasses.fields(join_context)}:
        return join_context(batch_id, cache_answers=_cache(), answered_by="batch", pricer=RecordPricer(price)), \
            {"price": price, "answered_by": "batch"}
    return join_context(batch_id, cache_answers=_cache()), {"price": price, "answered_by": "batch"}


def _final(outcome: Any) -> Any:
    """What the collector writes: the records (``final_records``) when the package has them, else (``--before``
    with an older package) the rows."""
    return outcome.final_records() if hasattr(outcome, "final_records") else outcome.final_rows()


def _land_files(folder: Path, files: list[str], target: Path, manifest: Any = None) -> dict[str, Any]:
    """What ``operators/landing.land_results`` does for ``files`` and a ``file://`` JSONL ``target``: with a
    ``manifest`` (the files priced at collect, :func:`_collected_manifest`) ``land_results`` itself (each
    file copied as it is); else the records path (results lines read as records, cost added, written as
    given) when the package has it, else (``--before`` with an older package) the rows path of that package."""
    from airflow.sdk import ObjectStoragePath

    from airflow_llm_batch.operators import landing
    from airflow_llm_batch.pipeline.run_folder import RunFolder
    from airflow_llm_batch.sinks.base import LandingContext
    from airflow_llm_batch.sinks.object_storage import ObjectStorageSink

    price = _price()
    context = LandingContext(dag_id="bench", task_id="bench", run_id="bench", provider="openai", model="gpt-4o-mini")
    run_folder, sink = RunFolder(ObjectStoragePath(f"file://{folder}")), ObjectStorageSink(str(target))
    if manifest is not None:
        copied: dict[str, Any] = landing.land_results(sink, run_folder, manifest, price, context)
        return copied
    if hasattr(landing, "with_record_cost"):
        records = landing.with_record_cost(run_folder._iter_records(files, "batch"), price)
        landed: dict[str, Any] = sink.write_records(records, context)
        return landed
    return sink.write(landing.with_row_cost(run_folder._iter_files(files, "batch"), price), context)


def _price() -> Any:
    from airflow_llm_batch.pipeline.prices import PriceTable

    return PriceTable.default().price_for("openai", "gpt-4o-mini")


def _prices_at_collect() -> bool:
    """Whether the package under test writes results priced at collect (pipeline/record_cost.py)."""
    import importlib.util

    return importlib.util.find_spec("airflow_llm_batch.pipeline.record_cost") is not None


def _collected_manifest(folder: Path, only: str | None = None) -> Any:
    """The manifest ``Collector`` leaves for the chunks ``phase_collect`` wrote priced (None when the package
    does not price at collect: then landing prices every row itself); ``only``: one results file instead,
    named as the first chunk's (the warm-up's)."""
    collected = json.loads((folder / "bench_collected.json").read_text())
    if not collected["priced"]:
        return None
    from airflow_llm_batch.pipeline.manifest import ChunkRecord, ChunkState, Manifest
    from airflow_llm_batch.pipeline.record_cost import price_note

    note = price_note(_price())
    chunks = [ChunkRecord(c["index"], c["count"], 0, "", "", state=ChunkState.COLLECTED, counts=c["counts"],
                          results=only or f"results/{c['index']:05d}.jsonl", priced=note)
              for c in collected["chunks"][:1 if only else None]]
    return Manifest(provider="openai", model="gpt-4o-mini", run_tag="bench", digest="", total_rows=0, chunks=chunks)


def phase_land(n: int, folder: Path, tracer: _Tracer) -> dict[str, Any]:
    """What ``operators/landing.land`` does with the collected results for a ``file://`` JSONL destination:
    read every results file (``RunFolder``), add each row's cost, write the destination. A package that
    prices rows at collect (``phase_collect`` wrote the files so, its CPU counted there) lands them through
    ``land_results``: each file copied as it is."""
    from airflow_llm_batch.sinks.object_storage import ObjectStorageSink

    files = sorted(f"results/{p.name}" for p in (folder / "results").glob("*.jsonl"))
    target = folder / "landed" / "results.jsonl"
    target.parent.mkdir(exist_ok=True)
    ObjectStorageSink(str(target))._path(str(target))  # Airflow's ObjectStoragePath, imported in a task already
    manifest = _collected_manifest(folder)
    baseline = _peak_kib()
    start, cpu0 = time.perf_counter(), _cpu()
    landed = _land_files(folder, files, target, manifest)
    seconds, cpu = time.perf_counter() - start, _cpu() - cpu0
    assert landed["succeeded"] == n and landed["failed"] == 0, landed
    return {"seconds": seconds, "cpu_seconds": cpu, "baseline_kib": baseline, "peak_kib": _peak_kib(),
            "notes": f"{len(files)} results files -> {target.stat().st_size / n:.0f} B/landed row, sha256 "
                     f"{_sha256(target)[:12]}{'; files copied as collected' if manifest else ''}"}


def _sha256(path: Path) -> str:
    """The landed file's digest (outside the timer): before and after must land the same bytes."""
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def warm_collect(folder: Path) -> None:
    """The collect path once on one row, into a scratch file (removed): its one-time imports."""
    from airflow.sdk import ObjectStoragePath

    from airflow_llm_batch.backends.json_lines import json_object
    from airflow_llm_batch.backends.openai import decode_output_line
    from airflow_llm_batch.pipeline.answered import write_results
    from airflow_llm_batch.pipeline.join import JoinContext, classify_chunk
    from airflow_llm_batch.pipeline.key_index import read_key_index
    from airflow_llm_batch.pipeline.parsing import OutputParser

    chunk = json.loads((folder / "bench_chunks.json").read_text())[0]
    workspace = ObjectStoragePath(f"file://{folder}")
    with (folder / "outputs" / f"{chunk['index']:05d}.output.jsonl").open("rb") as fh:
        first = decode_output_line(json_object(fh.readline()) or {})
    entry = next(read_key_index(workspace / chunk["keys"]))
    context, priced = _collect_context(JoinContext, "warm")
    outcome = classify_chunk([entry], {entry.custom_id: first}, OutputParser(_model()), context)
    write_results(workspace / "warm" / "results.jsonl", _final(outcome), **priced)
    shutil.rmtree(folder / "warm")


def warm_land(folder: Path) -> None:
    """The land path on one results file, into a scratch file (removed): its one-time imports."""
    first = sorted(f"results/{p.name}" for p in (folder / "results").glob("*.jsonl"))[0]
    (folder / "warm").mkdir()
    lines = (folder / first).read_bytes().splitlines(keepends=True)[:1]
    (folder / "warm" / "one.jsonl").write_bytes(b"".join(lines))
    manifest = _collected_manifest(folder, only="warm/one.jsonl")
    _land_files(folder, ["warm/one.jsonl"], folder / "warm" / "landed.jsonl", manifest)
    shutil.rmtree(folder / "warm")


#: run before the timer (and outside --profile) unless --cold
WARM_FUNCS = {"collect": warm_collect, "land": warm_land}
PHASE_FUNCS = {"prepare": phase_prepare, "synth": phase_synth, "collect": phase_collect, "land": phase_land}


def worker(phase: str, n: int, folder: Path, profile: bool, trace: bool) -> None:
    before = os.environ.get("BENCH_PACKAGE_ROOT")
    if before:  # --before DIR: that checkout's package, not this one's
        sys.path.insert(0, before)
    # import everything up front so neither the profile nor tracemalloc counts module imports
    import airflow_llm_batch.backends.openai
    import airflow_llm_batch.pipeline.answers_ahead
    import airflow_llm_batch.pipeline.join
    import airflow_llm_batch.pipeline.key_index
    import airflow_llm_batch.pipeline.prepare
    import airflow_llm_batch.pipeline.run  # noqa: F401

    if phase in WARM_FUNCS and not _cold():
        WARM_FUNCS[phase](folder)
    load_start = os.getloadavg()[0]
    tracer = _Tracer(trace)
    if phase in WARM_FUNCS and (_gc_paused() or (phase == "collect" and _collector_pauses_gc())):
        import gc

        gc.disable()
    func = PHASE_FUNCS[phase]
    if profile:
        import cProfile
        import io
        import pstats

        prof = cProfile.Profile()
        result = prof.runcall(func, n, folder, tracer)
        buf = io.StringIO()
        order = os.environ.get("BENCH_SORT", "cumulative")
        pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(order).print_stats(30)
        result["profile"] = buf.getvalue()
    else:
        result = func(n, folder, tracer)
    result["tracemalloc"] = tracer.report()
    result.update(phase=phase, n=n, load=max(load_start, os.getloadavg()[0]))
    print(RESULT_MARK + json.dumps(result), flush=True)


# -- the parent: one subprocess per (N, phase), then the table ---------------------------------------------
def _run_phase(phase: str, n: int, folder: Path, args: argparse.Namespace,
               before: Path | None = None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", phase, "--rows", str(n), "--folder", str(folder)]
    env = {**os.environ, "BENCH_PLAIN": "1" if args.plain else "0", "BENCH_COLD": "1" if args.cold else "0",
           "BENCH_GC_PAUSED": "1" if args.gc_paused else "0", "BENCH_CACHE": "1" if args.cache else "0"}
    env.pop("BENCH_PACKAGE_ROOT", None)
    if before is not None:
        env["BENCH_PACKAGE_ROOT"] = str(before.resolve())
    cmd += ["--profile"] if args.profile else []
    cmd += ["--tracemalloc"] if args.tracemalloc else []
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"phase {phase} at N={n} failed (exit {proc.returncode})")
    line = next(x for x in proc.stdout.splitlines() if x.startswith(RESULT_MARK))
    result: dict[str, Any] = json.loads(line[len(RESULT_MARK):])
    result["wall"] = wall
    if before is not None:
        result["phase"] = f"{phase} (before)"
    return result


def _show(r: dict[str, Any], n: int, extras: list[str]) -> None:
    phase = r["phase"]
    print(f"N={n:>10,} {phase:<17} {r['seconds']:7.1f} s (CPU {r['cpu_seconds']:.2f} s, load "
          f"{r['load']:.1f}) {n / r['seconds']:>10,.0f} rows/s, {n / max(r['cpu_seconds'], 1e-9):>10,.0f} rows/CPU-s  "
          f"peak RSS {_mib(r['peak_kib']):>7} MiB (after imports {_mib(r['baseline_kib'])})  "
          f"{r['notes']}", flush=True)
    for key in ("profile", "tracemalloc"):
        if r.get(key):
            text = r[key] if isinstance(r[key], str) else "\n".join(r[key])
            block = f"### {key}: {phase}, N={n:,}\n\n```\n{text.rstrip()}\n```"
            extras.append(block)
            print(block, flush=True)


def _disk_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


def _table(results: list[dict[str, Any]]) -> list[str]:
    lines = ["| N | phase | wall s | CPU s | rows/s (wall) | rows per CPU-s | load1 | RSS after imports (MiB) "
             "| peak RSS (MiB) | peak - baseline (MiB) | notes |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        lines.append(f"| {r['n']:,} | {r['phase']} | {r['seconds']:.1f} | {r['cpu_seconds']:.2f} | "
                     f"{r['n'] / r['seconds']:,.0f} | {r['n'] / max(r['cpu_seconds'], 1e-9):,.0f} | {r['load']:.1f} | "
                     f"{_mib(r['baseline_kib'])} | {_mib(r['peak_kib'])} | "
                     f"{_mib(r['peak_kib'] - r['baseline_kib'])} | {r['notes']} |")
    return lines


def _verdict(results: list[dict[str, Any]]) -> list[str]:
    sizes = sorted({r["n"] for r in results})
    if len(sizes) < 2:
        return ["(one N only: run two sizes to compare peak memory)"]
    lo, hi = sizes[0], sizes[-1]
    out = []
    for phase in PHASES:
        a = next((r for r in results if r["n"] == lo and r["phase"] == phase), None)
        b = next((r for r in results if r["n"] == hi and r["phase"] == phase), None)
        if a is None or b is None:
            continue
        da, db = a["peak_kib"] - a["baseline_kib"], b["peak_kib"] - b["baseline_kib"]
        growth = db - da
        flat = growth <= max(16 * 1024, 0.25 * max(da, 1))
        per_row = growth * 1024 / (hi - lo)
        label = f"{phase} (harness, not library code)" if phase == "synth" else phase
        if phase != "prepare" and lo < 50_000:
            label += f" [holds one chunk at a time: N={lo:,} is below the 50,000-row chunk, compare N >= 50,000]"
        out.append(f"- {label}: peak - baseline {_mib(da)} MiB at N={lo:,} vs {_mib(db)} MiB at N={hi:,} "
                   f"({'+' if growth >= 0 else ''}{_mib(growth)} MiB, {per_row:+.1f} B/row): "
                   f"{'flat (streaming)' if flat else 'GROWS with N'}")
    return out


def _code_state() -> str:
    """The commit measured, and whether the library had uncommitted edits (figures depend on them)."""
    def git(*cmd: str) -> str:
        proc = subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, check=False)
        return proc.stdout.rstrip("\n") if proc.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    dirty = [x[3:] for x in git("status", "--porcelain", "--", "airflow_llm_batch").splitlines()]
    if not dirty:
        return f"{head} (library clean)"
    shown = ", ".join(dirty[:8]) + (f" (+{len(dirty) - 8} more)" if len(dirty) > 8 else "")
    return f"{head} plus uncommitted library edits: {shown}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=list(DEFAULT_ROWS), help="sizes N to run")
    ap.add_argument("--phases", nargs="+", choices=PHASES, default=list(PHASES))
    ap.add_argument("--profile", action="store_true", help="cProfile each phase (top 30 by cumulative time)")
    ap.add_argument("--tracemalloc", action="store_true", help="tracemalloc probes (slow; use small N)")
    ap.add_argument("--workdir", type=Path, default=None, help="where the temp folders go (default: $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the temp folders")
    ap.add_argument("--out", type=Path, default=OUT_DIR / "prepare_and_parse.md")
    ap.add_argument("--plain", action="store_true",
                    help="plain template and plain-text answers, no response schema (issue 12's goal)")
    ap.add_argument("--cache", action="store_true",
                    help="the request cache on, as the operator's default: fingerprints at prepare, answers "
                         "stored at collect")
    ap.add_argument("--cold", action="store_true",
                    help="no warm-up before the timed collect and land: one-time imports counted")
    ap.add_argument("--gc-paused", action="store_true",
                    help="cyclic garbage collector off for the timed land too (a what-if; collect pauses it "
                         "as Collector.collect does)")
    ap.add_argument("--before", type=Path, default=None,
                    help="another checkout: run collect and land with its package first (same data)")
    ap.add_argument("--worker", choices=PHASES, help=argparse.SUPPRESS)
    ap.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        worker(args.worker, args.rows[0], args.folder, args.profile, args.tracemalloc)
        return 0

    if set(args.phases) & {"synth", "collect", "land"} and "prepare" not in args.phases:
        ap.error("synth, collect and land need the prepare phase of the same run")
    if "land" in args.phases and "collect" not in args.phases:
        ap.error("land needs the collect phase of the same run")
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    extras: list[str] = []
    for n in args.rows:
        folder = Path(tempfile.mkdtemp(prefix=f"llmb-bench-{n}-", dir=args.workdir))
        try:
            for phase in PHASES:
                if phase not in args.phases and not (phase == "synth" and "collect" in args.phases):
                    continue
                runs = [args.before, None] if args.before is not None and phase in COMPARED else [None]
                for before in runs:
                    r = _run_phase(phase, n, folder, args, before)
                    r["notes"] += f"; workspace now {_disk_bytes(folder) / 2**20:,.0f} MiB on disk"
                    results.append(r)
                    _show(r, n, extras)
        finally:
            if args.keep:
                print(f"kept {folder}")
            else:
                shutil.rmtree(folder, ignore_errors=True)
    total = time.perf_counter() - started

    skewed = " (figures skewed by --profile/--tracemalloc)" if args.profile or args.tracemalloc else ""
    doc = [
        "# prepare_and_parse benchmark" + skewed + (" (--plain: plain template, text answers)" if args.plain else "")
        + (" (--cache: the request cache on)" if args.cache else "")
        + (" (--cold: one-time imports counted in collect and land)" if args.cold else "")
        + (" (--gc-paused: no cyclic GC in collect and land)" if args.gc_paused else ""),
        "",
        f"- date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- machine: {platform.machine()}, os.cpu_count()={os.cpu_count()}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}",
        f"- code: {_code_state()}",
        f"- command: `{' '.join([Path(sys.executable).name, 'bench/prepare_and_parse.py', *(argv or sys.argv[1:])])}`",
        f"- total wall time: {total:.0f} s (every phase is a fresh subprocess; RSS is ru_maxrss of that process)",
        "",
        *_table(results),
        "",
        "Peak memory versus N (peak RSS minus RSS after imports, smallest vs largest N):",
        "",
        *_verdict(results),
        "",
        *[x for block in extras for x in (block, "")],
    ]
    text = "\n".join(doc)
    print("\n" + text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
