"""Results as JSONL on any object storage, written to a temporary name and renamed when complete."""

from __future__ import annotations

import json
from collections.abc import Iterable

from airflow.sdk import ObjectStoragePath

from airflow_llm_batch.pipeline.storage import AtomicWriter
from airflow_llm_batch.pipeline.types import ResultRow


def write_jsonl(destination: ObjectStoragePath, rows: Iterable[ResultRow]) -> int:
    """Stream ``rows`` to ``destination``; readers never see a partial file. Returns the row count."""
    count = 0
    with AtomicWriter(destination) as fh:
        for row in rows:
            fh.write((json.dumps(row.to_dict(), ensure_ascii=False, default=str) + "\n").encode())
            count += 1
    return count
