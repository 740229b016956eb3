"""bench/realtime_throughput.py runs end to end on a tiny size and produces every figure (not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "realtime_throughput.py"


def test_realtime_throughput_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "realtime.md"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--rows", "40", "--concurrency", "4", "--latency", "0.01", "--out", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    row = next(line for line in out.read_text().splitlines() if line.startswith("| 40 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:3] == ["4", "10"] and cells[3] in ("sdk", "raw"), row
    assert cells[5].endswith("(400)"), "ideal = concurrency / latency"
    assert cells[6].endswith("%") and float(cells[7]) > 0 and float(cells[8]) > 0 and float(cells[9]) > 0, row
