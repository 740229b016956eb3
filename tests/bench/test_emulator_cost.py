"""bench/emulator_cost.py still runs end to end on a tiny N, both scenarios, a baseline folder and the aiohttp floor
(its figures are not checked here, only that every answer came back and each row has a CPU figure)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "emulator_cost.py"


def test_emulator_cost_reports_cpu_per_answer_for_each_variant_and_scenario(tmp_path: Path) -> None:
    out = tmp_path / "emulator_cost.md"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--n", "150", "--concurrency", "8", "--latency", "0.001",
         "--baseline", str(ROOT), "--floor", "--out", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line for line in out.read_text().splitlines() if line.startswith(("| chat |", "| retrieve |"))]
    variants = {"baseline", "this tree", "aiohttp floor"}
    assert sorted((row.split("|")[1].strip(), row.split("|")[2].strip()) for row in rows) == sorted(
        (scenario, variant) for scenario in ("chat", "retrieve") for variant in variants)
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[2] == "150" and float(cells[3]) > 0, row
    assert "load average before" in out.read_text()
