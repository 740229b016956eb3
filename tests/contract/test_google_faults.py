"""The same fault gives the same row outcome on Gemini (Developer API) and on Vertex AI: the same rows,
with the emulator's fault markers, run through the real engine (BatchRun) against the emulator over
HTTP with both backends, and every row ends with the same status, error code and finish reason."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from airflow_llm_batch.emulator import Emulator
from airflow_llm_batch.pipeline.run import BatchRun
from airflow_llm_batch.pipeline.types import ResultRow
from tests.contract.case_gemini import GEMINI_CASE
from tests.contract.case_vertex import VERTEX_CASE
from tests.contract.conftest import BackendCase, Backends
from tests.contract.test_backend_contract import TAGS, folder, paid, run_all, spec_for

#: fault marker -> (status, error code, finish_reason note) every Google backend must give
FAULTS: dict[str, tuple[str, str | None, str | None]] = {
    "": ("succeeded", None, None),
    "[[emulator:blocked]]": ("failed", "prompt_blocked", None),
    "[[emulator:filtered]]": ("failed", "content_filter", "content_filter"),
    "[[emulator:truncate]]": ("failed", "truncated", "length"),
    "[[emulator:error:FAILED_PRECONDITION]]": ("failed", "invalid_request_error", None),
    "[[emulator:error:ALREADY_EXISTS]]": ("failed", "invalid_request_error", None),
}


class Verdict(BaseModel):
    """A structured answer: a cut one does not parse, so truncation shows as ``truncated``."""

    label: str


def outcome(row: ResultRow) -> tuple[str, str | None, str | None]:
    return row.status.value, (row.error or {}).get("code"), row.extra.get("finish_reason")


async def run_faults(case: BackendCase, emulator: Emulator, workspace: Path) -> dict[str, Any]:
    """Each fault marker (and a plain row) through ``case``'s backend: marker -> outcome."""
    prefix = uuid.uuid4().hex[:8]
    rows = [{"id": f"{prefix}-{i}", "text": f"row {i} {marker}".strip()} for i, marker in enumerate(FAULTS)]
    backends = Backends(case)
    try:
        run = BatchRun(folder(workspace), backends.build(emulator), tags=TAGS)
        _, results = await run_all(run, rows, spec_for(case, Verdict), response_format=Verdict)
    finally:
        await backends.aclose()
    assert set(paid(emulator, case, rows).values()) == {1}  # none of these faults is worth paying again
    by_key = {row.key: row for row in results}
    return {marker: outcome(by_key[f"{prefix}-{i}"]) for i, marker in enumerate(FAULTS)}


async def test_gemini_and_vertex_end_the_same_faults_the_same_way(
        emulator: Emulator, vertex_contract_storage: Any, tmp_path: Path) -> None:
    gemini = await run_faults(GEMINI_CASE, emulator, tmp_path / "gemini")
    vertex = await run_faults(VERTEX_CASE, emulator, tmp_path / "vertex")
    assert gemini == vertex == FAULTS
