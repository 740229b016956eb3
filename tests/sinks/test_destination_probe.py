"""ObjectStorageSink.check proves the destination writable (parent created, probe written and removed)
before anything is submitted."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.sinks import open_sink
from tests.sinks.helpers import context


def test_a_destination_under_a_file_is_refused_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(InvalidInputError, match=r"a-file/out/r.jsonl is not writable .*Nothing was submitted"):
        open_sink(f"file://{blocker}/out/r.jsonl").check(context())


def test_check_creates_the_parent_and_leaves_no_probe(tmp_path: Path) -> None:
    dest = tmp_path / "deep" / "er" / "r.parquet"
    open_sink(f"file://{dest}?failures=separate").check(context())
    assert dest.parent.is_dir() and list(dest.parent.iterdir()) == []
