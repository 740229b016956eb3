"""Result rows and landing contexts for the sink tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, Field

from airflow_llm_batch.pipeline.types import ResultRow, RowStatus, Usage
from airflow_llm_batch.sinks import LandingContext


class Detail(BaseModel):
    note: str
    n: int


class Verdict(BaseModel):
    label: str = Field(max_length=200)
    score: int = Field(ge=0, le=10)
    ratio: float
    ok: bool
    tags: list[str]
    detail: Detail
    meta: dict[str, int]


def context(run_id: str = "run-1", schema: dict[str, Any] | None = None, *, task_id: str = "task",
            map_index: int = -1, **extra: Any) -> LandingContext:
    return LandingContext(dag_id="dag", task_id=task_id, run_id=run_id, map_index=map_index,
                          response_schema=Verdict.model_json_schema() if schema is None else schema,
                          provider="openai", model="gpt-4o-mini", extra=extra)


def result_rows(count: int, *, fail_every: int = 10, tag: str = "", prefix: str = "k") -> Iterator[ResultRow]:
    """``count`` rows keyed ``{prefix}00000``..., every ``fail_every``-th one failed (from the 4th on)."""
    for i in range(count):
        key = f"{prefix}{i:05d}"
        common = {"key": key, "batch_id": "batch_1", "custom_id": key, "extra": {"ticket": f"T{i}"}}
        if fail_every and i % fail_every == 3:
            yield ResultRow(status=RowStatus.FAILED, output="{not json", usage=Usage(7, 2, 0),
                            error={"code": "invalid_output", "message": "answer is not JSON"}, **common)
            continue
        parsed = {"label": f"label {i}{tag}", "score": i % 11, "ratio": i / 4, "ok": i % 2 == 0,
                  "tags": ["a", f"t{i % 3}"], "detail": {"note": f"n{i}", "n": i}, "meta": {"i": i}}
        yield ResultRow(status=RowStatus.SUCCEEDED, output="{...}", parsed=parsed, usage=Usage(11, 5, 2),
                        model="gpt-4o-mini", **common)
