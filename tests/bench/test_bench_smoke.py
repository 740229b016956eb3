"""The benchmark script still runs end to end on a tiny N (its figures are not checked here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "prepare_and_parse.py"


def test_bench_runs_every_phase_on_a_tiny_input(tmp_path: Path) -> None:
    out = tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--rows", "300", "700", "--workdir", str(tmp_path), "--out", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = out.read_text()
    for n in ("300", "700"):
        for phase in ("prepare", "synth", "collect"):
            assert f"| {n} | {phase} |" in table
    assert "700 succeeded" in table
    assert "Peak memory versus N" in table
    assert not list(tmp_path.glob("llmb-bench-*")), "temp folders are removed"


def test_the_plain_cache_on_variant_lands_every_row_priced_and_stores_the_answers(tmp_path: Path) -> None:
    out = tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--rows", "500", "--plain", "--cache", "--workdir", str(tmp_path), "--keep",
         "--out", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = out.read_text()
    assert "(--cache: the request cache on)" in table and "500 succeeded" in table
    assert "files copied as collected" in table  # landed from the files priced at collect
    [folder] = list(tmp_path.glob("llmb-bench-*"))
    assert len(list((folder / "cache").rglob("*.json"))) == 500  # every answer stored in the request cache
    keys = (folder / "chunks").glob("*.keys.jsonl")
    assert all(b'"f":' in line for path in keys for line in path.read_bytes().splitlines())


def test_trigger_load_reports_every_figure(tmp_path: Path) -> None:
    """N triggers in one loop on an emulator process: the table has polls/s, lag, CPU/poll, startup, RSS."""
    out = tmp_path / "trigger_load.md"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT.parent / "trigger_load.py"), "--n", "20", "--window", "8", "--interval", "1",
         "--out", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = out.read_text()
    assert "| N | setup | polls/s (ideal) |" in table and "lag p50 / p99 / max ms" in table and "CPU ms/poll" in table
    row = next(line for line in table.splitlines() if line.startswith("| 20 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "package" and cells[2].endswith("(20)"), "ideal polls/s is N / interval"
    assert cells[7].replace(".", "").isdigit() or cells[7].startswith("not all ("), "the startup figure"
    assert float(cells[6]) > 0 and float(cells[8]) > 0, "CPU per poll and peak RSS"
    assert cells[9] == "0" and cells[10] == "0", "no failed poll, no event: the batches stayed open"


def test_e2e_runs_the_three_jobs_and_lands_every_row(tmp_path: Path) -> None:
    """airflow dags test of one LLMBatchOperator, the floor script and the no-op DAG, on 200 rows."""
    out = tmp_path / "e2e.md"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT.parent / "e2e.py"), "--rows", "200", "--workdir", str(tmp_path), "--out", str(out)],
        capture_output=True, text=True, timeout=1800, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    table = out.read_text()
    row = next(line for line in table.splitlines() if line.startswith("| 200 rows, one task |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert all(" s (CPU " in c and c.endswith(" MiB") for c in cells[1:4]), row
    assert "this package" in proc.stdout and "succeeded 200" in proc.stdout
    stages = next(line for line in table.splitlines() if line.startswith("| this package | 200 |"))
    cells = [float(c) for c in stages.strip("|").split("|")[2:]]  # 9 stages, wall, wall - batch wait
    prepare, submit, wait, collect = cells[2], cells[3], cells[4], cells[6]
    assert min(prepare, submit, collect) >= 0 and wait > 1.0, "the batches take ~5 s: the wait is seen"
    assert abs(sum(cells[:9]) - cells[9]) < 0.5, "the stages add up to the wall time (each rounded)"
    assert "Peak RSS during each stage" in table
    assert not list(tmp_path.glob("llmb-e2e-*")), "temp folders are removed"
