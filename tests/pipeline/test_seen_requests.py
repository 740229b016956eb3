"""The run's seen-fingerprints set (seen_requests.py) answers the same before and after it moves to SQLite."""

from __future__ import annotations

import hashlib

import pytest

from airflow_llm_batch.pipeline.seen_requests import SeenRequests


def fp_of(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


@pytest.mark.parametrize("in_memory", [0, 1, 700, 10_000])
def test_new_fingerprints_are_those_never_asked_before(in_memory: int) -> None:
    seen = SeenRequests(in_memory=in_memory)
    try:
        pages = [[fp_of(n % 900) for n in range(start, start + 1_000)] for start in range(0, 3_000, 1_000)]
        pages[1] += pages[1][:10]  # repeats inside one page count once
        new = [list(seen.new_among(page)) for page in pages]
        assert new[0] == [fp_of(n) for n in range(900)] and new[1] == new[2] == []
        assert list(seen.new_among([fp_of(5), fp_of(900), fp_of(900), fp_of(901)])) == [fp_of(900), fp_of(901)]
        spilled = seen._db is not None
        assert spilled == (in_memory < 900)
    finally:
        seen.close()
    assert seen._dir is None
