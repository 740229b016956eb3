"""The rows every fault-matrix DAG processes, the emulator's own token count of them, and the job each
provider runs in the cross-provider matrix (fewer rows than OpenAI's: each run costs CI time)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

ROWS = 1_200
CHUNK = 400


@dataclass(frozen=True)
class ProviderJob:
    """One provider's job in the cross-provider fault matrix (tests/faults/test_fault_matrix_providers.py)."""

    provider: str
    model: str
    rows: int
    chunk: int
    stats_key: str  # the emulator's statistics section that counts this provider's requests

    @property
    def conn_id(self) -> str:
        return f"faults_conn_{self.provider}"

    @property
    def dag_id(self) -> str:
        return f"faults_lost_{self.provider}"

    @property
    def chunks(self) -> int:
        return math.ceil(self.rows / self.chunk)


PROVIDER_JOBS = {job.provider: job for job in (
    ProviderJob("openai", "gpt-4o-mini", ROWS, CHUNK, "openai"),
    ProviderJob("azure_openai", "gpt-4o-mini", 120, 40, "openai"),
    ProviderJob("anthropic", "claude-haiku-4-5", 120, 40, "anthropic"),
    ProviderJob("gemini", "gemini-2.5-flash", 120, 40, "gemini"),
    ProviderJob("vertex", "gemini-2.5-flash", 120, 40, "vertex"),
)}


def texts(count: int = ROWS) -> list[str]:
    return [f"fault matrix row {i}: the quick brown fox number {i * 7919 % 1000}" for i in range(count)]


def keys(count: int = ROWS, prefix: str = "f") -> list[str]:
    return [f"{prefix}{i:05d}" for i in range(count)]


def write(path: Path, count: int = ROWS, prefix: str = "f") -> Path:
    path.write_text("".join(json.dumps({"id": key, "text": text}) + "\n"
                            for key, text in zip(keys(count, prefix), texts(count), strict=True)))
    return path


def emulator_prompt_tokens() -> int:
    """Prompt tokens of the whole job as the emulator counts them (its tokenizer + 3 per message)."""
    from airflow_llm_batch.emulator import model

    return model.prompt_tokens(texts())
