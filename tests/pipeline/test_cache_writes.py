"""The request cache's writes on the local disk (plain os calls, orjson-encoded entries): the same
answers as the atomic writer's JSON, each prefix folder made once, failures counted, concurrent
writers leaving one whole entry and no temporary file."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from airflow_llm_batch.pipeline import cache_files
from airflow_llm_batch.pipeline.cache import AnswerCache, CachedAnswer
from airflow_llm_batch.pipeline.cache_files import entry_bytes
from airflow_llm_batch.pipeline.storage import write_bytes_atomically
from airflow_llm_batch.pipeline.types import RawResult, Usage

STORED_AT = 1_800_000_000.123456


def fp(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def answer(text: str | None = "negative", **kw: Any) -> RawResult:
    return RawResult("row-1", ok=True, text=text, model="gpt-4o-mini-2024-07-18", usage=Usage(21, 1, 0),
                     finish_reason="stop", **kw)


def old_bytes(entry: dict[str, Any]) -> bytes:
    """What the cache wrote before the fast path (json.dumps, compact, non-ASCII kept)."""
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def entry_of(raw: RawResult, n: int = 1) -> dict[str, Any]:
    return CachedAnswer.from_raw(raw, STORED_AT).to_entry(fp(n))


ANSWERS = [
    answer(),
    answer("Café, 日本, Grüße \U0001f600 \"quoted\" \\ back\nslash \u2028 \x00"),
    answer(None, embedding=[0.25, -1.0, 3.0, 0.1, 123456.789]),
    RawResult("r", ok=True, text=None, model=None, usage=Usage(0, 0), finish_reason=None),
]


@pytest.mark.parametrize("raw", ANSWERS)
def test_an_entry_has_the_same_bytes_as_before_when_no_float_has_an_exponent(raw: RawResult) -> None:
    entry = entry_of(raw)
    assert entry_bytes(entry) == old_bytes(entry)


def test_floats_with_an_exponent_are_spelled_differently_but_read_back_the_same(tmp_path: Path) -> None:
    """orjson writes 1e-7 where json writes 1e-07: the bytes differ, the stored answer does not."""
    raw = answer(None, embedding=[1e-07, -3.4e-05, 2.5e20, 0.0, -0.0, 5e-324])
    entry = entry_of(raw)
    assert entry_bytes(entry) != old_bytes(entry) and json.loads(entry_bytes(entry)) == json.loads(old_bytes(entry))
    new, old = AnswerCache(tmp_path / "new", clock=lambda: STORED_AT), AnswerCache(tmp_path / "old")
    new.put_many([(fp(1), raw)])
    write_bytes_atomically(old.path_for(fp(1)), old_bytes(entry))  # an entry written by the old code
    assert new.get_many([fp(1)]) == old.get_many([fp(1)]) != {}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_written_by_json_as_before(value: float) -> None:
    """orjson would write null (an unreadable embedding); json writes NaN / Infinity, read back as is."""
    entry = entry_of(answer(None, embedding=[0.5, value]))
    assert entry_bytes(entry) == old_bytes(entry)
    entry = {**entry_of(answer()), "stored_at": value}
    assert entry_bytes(entry) == old_bytes(entry)


def test_integers_beyond_64_bits_are_written_by_json_as_before() -> None:
    entry = {**entry_of(answer()), "usage": {"input_tokens": 2**70, "output_tokens": 1}, "other": [2**1100]}
    assert entry_bytes(entry) == old_bytes(entry)


def test_text_that_is_not_utf8_is_counted_as_failed_not_raised(tmp_path: Path) -> None:
    cache = AnswerCache(tmp_path)
    assert cache.put_many([(fp(1), answer("half a pair \ud800")), (fp(2), answer())]) == 1
    assert (cache.stats.stored, cache.stats.failed) == (1, 1)
    assert set(AnswerCache(tmp_path).get_many([fp(1), fp(2)])) == {fp(2)}


def test_each_prefix_folder_is_made_once_per_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    makedirs = os.makedirs

    def counted(name: str, *args: Any, **kwargs: Any) -> None:
        made.append(name)
        makedirs(name, *args, **kwargs)

    monkeypatch.setattr(cache_files.os, "makedirs", counted)
    cache = AnswerCache(tmp_path)
    fps = [fp(i) for i in range(600)]
    assert cache.put_many((f, answer()) for f in fps) == 600
    assert cache.put_many((f, answer("again")) for f in fps[:50]) == 50
    assert sorted(made) == sorted({f"{tmp_path}/{f[:2]}" for f in fps})
    assert len(AnswerCache(tmp_path).get_many(fps)) == 600


def test_a_prefix_folder_removed_meanwhile_is_made_again(tmp_path: Path) -> None:
    cache = AnswerCache(tmp_path)
    cache.put_many([(fp(1), answer("first"))])
    os.remove(cache.path_for(fp(1)))
    os.rmdir(tmp_path / fp(1)[:2])  # e.g. a clean-up between two windows
    assert cache.put_many([(fp(1), answer("second"))]) == 1
    assert cache.get_many([fp(1)])[fp(1)].text == "second"


def test_failed_writes_are_counted_not_raised_and_leave_no_temporary(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    cache = AnswerCache(tmp_path)
    (tmp_path / fp(1)[:2]).write_text("a file where a prefix folder goes")
    (tmp_path / fp(2)[:2] / f"{fp(2)}.json").mkdir(parents=True)  # a folder where the entry goes
    with caplog.at_level(logging.WARNING, logger="airflow_llm_batch.pipeline.cache"):
        assert cache.put_many([(fp(1), answer()), (fp(2), answer()), (fp(3), answer())]) == 1
    assert (cache.stats.stored, cache.stats.failed) == (1, 2) and "could not store 2" in caplog.text
    assert os.listdir(tmp_path / fp(2)[:2]) == [f"{fp(2)}.json"]  # the temporary file was removed
    assert fp(3) in AnswerCache(tmp_path).get_many([fp(3)])


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_a_read_only_cache_folder_is_counted_as_failed(tmp_path: Path) -> None:  # pragma: no cover - as root
    (tmp_path / fp(1)[:2]).mkdir()
    (tmp_path / fp(1)[:2]).chmod(0o500)
    try:
        cache = AnswerCache(tmp_path)
        assert cache.put_many([(fp(1), answer())]) == 0 and cache.stats.failed == 1
    finally:
        (tmp_path / fp(1)[:2]).chmod(0o700)


def test_concurrent_writers_of_the_same_entries_leave_whole_entries_and_no_temporary(tmp_path: Path) -> None:
    """Six cache objects (six runs) store the same 200 requests at once, each its own answer: every
    entry is one writer's whole answer (the last to land), and no temporary file is left."""
    writers, fps = 6, [fp(i) for i in range(200)]
    start = threading.Barrier(writers)
    stored: list[int] = []

    def write(n: int) -> None:
        cache = AnswerCache(tmp_path, threads=1)
        start.wait()
        stored.append(cache.put_many((f, answer(f"writer {n}")) for f in fps))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stored == [200] * writers
    reader = AnswerCache(tmp_path)
    found = reader.get_many(fps)
    assert len(found) == 200 and reader.stats.corrupt == 0
    assert {a.text for a in found.values()} <= {f"writer {n}" for n in range(writers)}
    names = [name for _, _, files in os.walk(tmp_path) for name in files]
    assert len(names) == 200 and not [n for n in names if n.endswith(".tmp")]
