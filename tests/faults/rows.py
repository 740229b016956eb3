"""The rows every fault-matrix DAG processes, and the emulator's own token count of them."""

from __future__ import annotations

import json
import math
from pathlib import Path

ROWS = 1_200
CHUNK = 400


def texts() -> list[str]:
    return [f"fault matrix row {i}: the quick brown fox number {i * 7919 % 1000}" for i in range(ROWS)]


def write(path: Path) -> Path:
    path.write_text("".join(json.dumps({"id": f"f{i:05d}", "text": t}) + "\n" for i, t in enumerate(texts())))
    return path


def emulator_prompt_tokens() -> int:
    """Prompt tokens of the whole job as the emulator counts them (~4 chars per token + 3 per message)."""
    return sum(max(1, math.ceil(len(t) / 4)) + 3 for t in texts())
