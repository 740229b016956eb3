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
