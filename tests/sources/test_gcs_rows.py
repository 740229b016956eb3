"""Row files on GCS (gcp-storage-emulator), read without gcsfs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.sources.rows import rows_factory
from tests.gcp.fixtures import unique_name


def test_gcs_jsonl_rows_stream_and_missing_objects_fail_early(gcs_emulator: Any, gcs_connection: str) -> None:
    bucket = gcs_emulator.client().create_bucket(unique_name("rows").replace("_", "-"))
    rows = [{"id": i, "text": f"row {i}"} for i in range(1234)]
    bucket.blob("in/rows.jsonl").upload_from_string("".join(json.dumps(r) + "\n" for r in rows))
    factory = rows_factory(f"gs://{bucket.name}/in/rows.jsonl")
    assert list(factory()) == rows
    assert list(factory()) == rows  # a second pass reads again (the retry check does this)
    with pytest.raises(InvalidInputError, match="does not exist"):
        rows_factory(f"gs://{bucket.name}/in/missing.jsonl")
