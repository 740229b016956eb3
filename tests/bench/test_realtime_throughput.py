"""bench/realtime_throughput.py runs end to end on a tiny size and produces every figure (not checked), for
the OpenAI backend and the Gemini one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "realtime_throughput.py"


@pytest.mark.parametrize("provider", ["openai", "gemini"])
def test_realtime_throughput_reports_every_figure(provider: str, tmp_path: Path) -> None:
    out = tmp_path / "realtime.md"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--provider", provider, "--rows", "40", "--concurrency", "4",
         "--latency", "0.01", "--out", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith(f"| {provider} | 40 |")]
    assert len(rows) == 2, out.read_text()
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[2:4] == ["4", "10"] and cells[4] in ("sdk", "raw"), row
        assert cells[6].endswith("(400)"), "ideal = concurrency / latency"
        assert cells[7].endswith("%") and float(cells[8]) > 0 and float(cells[9]) > 0 and float(cells[10]) > 0, row
    assert {row.split("|")[5].strip() for row in rows} == {"sdk", "raw"}
