"""The router (routing.py) with a real request cache: repeats become followers across pages, hits
are answered from the cache, only misses are looked up in flight, and the rest go to the chunks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from airflow_llm_batch.pipeline import cache_files, routing
from airflow_llm_batch.pipeline.cache import AnswerCache
from airflow_llm_batch.pipeline.inflight import InFlight
from airflow_llm_batch.pipeline.key_index import KeyEntry
from airflow_llm_batch.pipeline.types import RawResult, Usage


class Chunks:
    def __init__(self) -> None:
        self.rows: list[tuple[bytes, KeyEntry, int | None]] = []

    def add(self, line: bytes, entry: KeyEntry, tokens: int | None = None) -> None:
        self.rows.append((line, entry, tokens))


def fp_of(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def test_followers_hits_adoptions_and_sends_across_pages(tmp_path: Path) -> None:
    cache = AnswerCache(tmp_path / "cache")
    answer = RawResult("x", ok=True, text="answer", usage=Usage(3, 1))
    cache.put_many([(fp_of(n), answer) for n in range(0, 1200, 4)])
    asked: list[list[str]] = []

    def in_flight(fps: list[str]) -> dict[str, InFlight]:
        asked.append(fps)
        return {fp: InFlight("batch_old", f"old-{fp[:6]}", 1.0) for fp in fps if int(fp, 16) % 5 == 0}

    chunks = Chunks()
    router = routing.RowRouter(tmp_path / "run", chunks, fingerprint=lambda line: fp_of(int(str(line["n"]))),
                               cache=cache, in_flight=in_flight)
    for row in range(2_500):  # 1,200 requests, repeated across the 1,000-row pages
        with_fp = KeyEntry(f"c{row}", f"k{row}", row, fp_of(row % 1200)) if row % 2 else None
        router.add(b"line\n", with_fp or KeyEntry(f"c{row}", f"k{row}", row), {"n": row % 1200}, tokens=7)
    router.close()
    assert router.follower_rows == 1_300 and router.cached_rows == 300 and router.cached_usage == Usage(900, 300)
    asked_fps = [fp for page in asked for fp in page]
    assert len(asked_fps) == len(set(asked_fps)) == 900  # misses only, each once
    adopted = sum(1 for fp in asked_fps if int(fp, 16) % 5 == 0)
    assert router.adopted.rows == adopted and len(chunks.rows) == 900 - adopted
    assert all(entry.fingerprint is not None and tokens == 7 for _, entry, tokens in chunks.rows)
    followers = (tmp_path / "run" / routing.FOLLOWERS_FILE).read_bytes().splitlines()
    assert len(followers) == 1_300 and len((tmp_path / "run" / routing.CACHED_FILE).read_bytes().splitlines()) == 300


@pytest.mark.parametrize("with_cache", [True, False])
def test_pages_without_repeats_hits_or_records_go_to_the_chunks_in_order(tmp_path: Path, with_cache: bool) -> None:
    asked: list[str] = []
    chunks = Chunks()
    router = routing.RowRouter(tmp_path / "run", chunks, fingerprint=lambda line: fp_of(int(str(line["n"]))),
                               cache=AnswerCache(tmp_path / "cache") if with_cache else None,
                               in_flight=lambda fps: asked.extend(fps) or {})
    for row in range(2_345):
        router.add(b"line %d\n" % row, KeyEntry(f"c{row}", f"k{row}", row), {"n": row}, tokens=row)
    router.close()
    assert [(data, e.row_no, e.fingerprint, t) for data, e, t in chunks.rows] == [
        (b"line %d\n" % row, row, fp_of(row), row) for row in range(2_345)]
    assert asked == ([fp_of(row) for row in range(2_345)] if with_cache else [])  # in flight: with the cache only
    assert router.follower_rows == router.cached_rows == router.adopted.rows == 0
    assert not (tmp_path / "run" / "answered").exists()


def test_without_a_cache_repeats_still_follow(tmp_path: Path) -> None:
    chunks = Chunks()
    router = routing.RowRouter(tmp_path, chunks, fingerprint=lambda line: fp_of(int(str(line["n"]))), cache=None)
    for row in range(1_500):
        router.add(b"x\n", KeyEntry(f"c{row}", f"k{row}", row), {"n": row % 700})
    router.close()
    assert router.follower_rows == 800 and [e.row_no for _, e, _ in chunks.rows] == list(range(700))


@pytest.mark.parametrize("bad", ["ab" * 8 + "," + "cd" * 8, "AB" * 16, "ab" * 4, 7, None, "", "ab" * 65,
                                 "\u00e9" * 16, "ab" * 16 + "\n", "../" + "ab" * 16, b"ab" * 16])
def test_a_page_of_fingerprints_with_one_bad_one_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="not a request fingerprint"):
        cache_files.check_fingerprints(["ab" * 32, bad, "cd" * 32])  # type: ignore[list-item]
    cache_files.check_fingerprints(["ab" * 32, "cd" * 8])


def test_lookups_in_a_cache_whose_prefix_folders_are_missing(tmp_path: Path) -> None:
    files = cache_files.EntryFiles(tmp_path / "absent")
    assert list(files.read_many([fp_of(1), fp_of(2)], threads=4)) == [None, None]
    (tmp_path / "absent" / fp_of(1)[:2]).mkdir(parents=True)
    (tmp_path / "absent" / fp_of(1)[:2] / f"{fp_of(1)}.json").write_bytes(b"{}")
    assert list(files.read_many([fp_of(1), fp_of(2)], threads=4)) == [b"{}", None]
