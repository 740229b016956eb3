"""bench/prepare_rows.py still runs its three variants, side by side with another package (its figures
are not checked here, only that they are produced and that both packages wrote the same lines)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_prepare_rows_reports_every_variant_for_both_packages() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "prepare_rows.py"), "--rows", "300", "--rounds", "1",
         "--before", str(ROOT)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line.strip("|").split("|") for line in proc.stdout.splitlines() if line.startswith("| plain")
            or line.startswith("| schema")]
    cells = [[c.strip() for c in row] for row in rows]
    assert sorted((c[0], c[1]) for c in cells) == sorted(
        (v, p) for v in ("plain", "plain-cache", "schema") for p in ("before", "now"))
    for variant in ("plain", "plain-cache", "schema"):
        digests = {c[5] for c in cells if c[0] == variant}
        assert len(digests) == 1 and all(len(d) == 12 for d in digests)
    assert all(float(c[2]) > 0 for c in cells)
