"""Duplicate detection (keys.py): the usual case answers from one scan, a duplicate is named with its
rows and keys, and several keys mapped to one custom_id are told apart."""

from __future__ import annotations

from airflow_llm_batch.pipeline.keys import KeyRegistry


def test_no_duplicates() -> None:
    with KeyRegistry() as registry:
        for n in range(50_000):
            registry.add(f"T-{n}", f"T-{n}", n)
        assert registry.duplicates() == (0, [])


def test_duplicates_are_named_with_their_rows_and_keys_in_row_order() -> None:
    with KeyRegistry() as registry:
        for n in range(30_000):  # more than a page: some rows are flushed before the check
            registry.add(f"T-{n}", f"T-{n}", n)
        registry.add("T-7", "T-7", 30_000)
        registry.add("T-7", "T-7", 30_001)
        registry.add("k_ab", "a/b", 30_002)  # two keys the provider's id rules map to one custom_id
        registry.add("k_ab", "a b", 30_003)
        registry.add("T-3", "T-3", 30_004)
        count, listed = registry.duplicates()
    assert count == 3
    assert listed == [(["T-3"], [3, 30_004]), (["T-7"], [7, 30_000, 30_001]), (["a b", "a/b"], [30_002, 30_003])]
