"""Results as JSONL on any object storage, written to a temporary name and renamed when complete."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from airflow.sdk import ObjectStoragePath

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.pipeline.storage import AtomicWriter
from airflow_llm_batch.pipeline.types import ResultRow
from airflow_llm_batch.sinks.base import LandingContext


def write_jsonl(destination: ObjectStoragePath, rows: Iterable[ResultRow]) -> int:
    """Stream ``rows`` to ``destination``; readers never see a partial file. Returns the row count."""
    count = 0
    with AtomicWriter(destination) as fh:
        for row in rows:
            fh.write((json.dumps(row.to_dict(), ensure_ascii=False, default=str) + "\n").encode())
            count += 1
    return count


class ObjectStorageSink:
    """``file://``, ``gs://``, ``s3://``... (anything ObjectStoragePath knows) as JSONL.

    Example: ``ObjectStorageSink("gs://bucket/triage/2026-11-21.jsonl")``
    """

    def __init__(self, destination: str, **options: Any) -> None:
        from airflow_llm_batch.sources.rows import to_path

        if options:
            raise InvalidInputError(f"unknown options for an object storage destination: {sorted(options)}")
        self.uri = destination
        self.path = to_path(destination)

    def check(self, context: LandingContext) -> None:
        try:
            self.path.fs  # noqa: B018 - resolving the filesystem fails fast on an unknown scheme
        except (ValueError, ImportError) as exc:
            raise InvalidInputError(f"destination {self.uri!r}: {exc}; nothing was submitted.") from exc

    def write(self, rows: Iterable[ResultRow], context: LandingContext) -> dict[str, Any]:
        count = write_jsonl(self.path, rows)
        return {"uri": str(self.path), "rows": count}
