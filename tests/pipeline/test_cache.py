"""Request fingerprints and the request cache, on real files (and an fsspec memory filesystem)."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_llm_batch.pipeline.cache import AnswerCache, CachedAnswer, CacheMode
from airflow_llm_batch.pipeline.fingerprint import request_fingerprint
from airflow_llm_batch.pipeline.types import FinishReason, RawResult, Usage


def openai_line(custom_id: str = "row-1", **body: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Classify: late parcel"}],
                     "temperature": 0, **body}}


def fp(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def answer(text: str = "negative", **kw: Any) -> RawResult:
    return RawResult("row-1", ok=True, text=text, model="gpt-4o-mini-2024-07-18", usage=Usage(21, 1, 0),
                     finish_reason="stop", **kw)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- fingerprints ------------------------------------------------------------------------------

def test_fingerprint_is_the_sha256_of_the_canonical_request_without_row_ids() -> None:
    line = openai_line("row-9", messages=[{"role": "user", "content": "Café, 日本, Grüße"}])
    canonical = json.dumps({"provider": "openai", "line": {k: v for k, v in line.items() if k != "custom_id"}},
                           sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert request_fingerprint("openai", line) == hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_same_request_from_different_rows_has_one_fingerprint() -> None:
    assert request_fingerprint("openai", openai_line("a")) == request_fingerprint("openai", openai_line("b"))
    gemini = {"key": "row-1", "request": {"contents": [{"parts": [{"text": "hi"}]}]}}
    assert request_fingerprint("gemini", gemini) == request_fingerprint("gemini", {**gemini, "key": "row-2"})


def test_key_order_does_not_matter() -> None:
    a = {"custom_id": "x", "params": {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": []}}
    b = {"params": {"messages": [], "max_tokens": 10, "model": "claude-haiku-4-5"}, "custom_id": "y"}
    assert request_fingerprint("anthropic", a) == request_fingerprint("anthropic", b)


@pytest.mark.parametrize("change", [
    {"model": "gpt-4o"},
    {"messages": [{"role": "user", "content": "Classify: late parcel!"}]},
    {"temperature": 0.2},
    {"max_tokens": 10},
    {"response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}}}},
])
def test_any_change_of_the_request_changes_the_fingerprint(change: dict[str, Any]) -> None:
    assert request_fingerprint("openai", openai_line(**change)) != request_fingerprint("openai", openai_line())


def test_schema_changes_count_even_in_fields_named_like_row_ids() -> None:
    def with_schema(prop: str) -> dict[str, Any]:
        return openai_line(response_format={"type": "json_schema", "json_schema": {
            "name": "r", "schema": {"type": "object", "properties": {prop: {"type": "string"}}}}})

    assert request_fingerprint("openai", with_schema("key")) != request_fingerprint("openai", with_schema("id"))


def test_provider_and_endpoint_are_part_of_the_fingerprint() -> None:
    line = openai_line()
    assert request_fingerprint("openai", line) != request_fingerprint("azure_openai", line)
    assert request_fingerprint("openai", line) != request_fingerprint("openai", {**line, "url": "/v1/responses"})


# --- modes -------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, mode", [
    ("read_write", CacheMode.READ_WRITE), ("READ", CacheMode.READ), ("write", CacheMode.WRITE),
    ("off", CacheMode.OFF), (" Read-Write ", CacheMode.READ_WRITE), (True, CacheMode.READ_WRITE),
    (False, CacheMode.OFF), (None, CacheMode.OFF), (CacheMode.READ, CacheMode.READ),
])
def test_parse_mode(value: Any, mode: CacheMode) -> None:
    assert CacheMode.parse(value) is mode


def test_parse_names_the_valid_modes() -> None:
    with pytest.raises(ValueError, match=r"'readwrite'.*\['read_write', 'read', 'write', 'off'\]"):
        CacheMode.parse("readwrite")


def test_mode_reads_and_writes() -> None:
    assert [(m.reads, m.writes) for m in CacheMode] == [(True, True), (True, False), (False, True),
                                                       (False, False)]


# --- the cache on local files ------------------------------------------------------------------

def test_round_trip(tmp_path: Path) -> None:
    clock = Clock()
    cache = AnswerCache(tmp_path / "cache", clock=clock)
    embedding = RawResult("row-2", ok=True, embedding=[0.25, -1.0, 3.0], model="text-embedding-3-small",
                          usage=Usage(5, 0))
    assert cache.put_many([(fp(1), answer()), (fp(2), embedding)]) == 2
    entry = tmp_path / "cache" / fp(1)[:2] / f"{fp(1)}.json"
    assert json.loads(entry.read_text())["fingerprint"] == fp(1)

    found = AnswerCache(tmp_path / "cache").get_many([fp(1), fp(2), fp(3)])
    assert set(found) == {fp(1), fp(2)}
    assert found[fp(1)] == CachedAnswer(text="negative", embedding=None, model="gpt-4o-mini-2024-07-18",
                                        usage=Usage(21, 1, 0), finish_reason="stop", stored_at=clock.now)
    assert found[fp(2)].embedding == [0.25, -1.0, 3.0]
    raw = found[fp(1)].to_raw("row-77")
    assert raw == RawResult("row-77", ok=True, text="negative", model="gpt-4o-mini-2024-07-18",
                            usage=Usage(21, 1, 0), finish_reason="stop")


def test_only_successful_answers_are_stored(tmp_path: Path) -> None:
    cache = AnswerCache(tmp_path)
    failed = RawResult("row-1", ok=False, error_code="rate_limit", error_message="slow down")
    assert cache.put_many([(fp(1), failed), (fp(2), answer())]) == 1
    assert set(cache.get_many([fp(1), fp(2)])) == {fp(2)}
    assert cache.stats.stored == 1


@pytest.mark.parametrize(("stored", "read"), [("stop", FinishReason.STOP), ("end_turn", FinishReason.STOP),
                                              ("STOP", FinishReason.STOP), ("MAX_TOKENS", FinishReason.LENGTH),
                                              ("max_tokens", FinishReason.LENGTH), ("pause_turn", FinishReason.OTHER),
                                              (None, None)])
def test_entries_stored_with_a_provider_finish_word_read_as_the_neutral_reason(
        tmp_path: Path, stored: str | None, read: FinishReason | None) -> None:
    """Entries written before the neutral FinishReason hold the provider's word: they still hit."""
    cache = AnswerCache(tmp_path)
    cache.put_many([(fp(1), answer())])
    entry = tmp_path / fp(1)[:2] / f"{fp(1)}.json"
    entry.write_text(json.dumps({**json.loads(entry.read_text()), "finish_reason": stored}))
    found = AnswerCache(tmp_path).get_many([fp(1)])[fp(1)]
    assert found.finish_reason is read and found.to_raw("row-1").finish_reason is read
    assert json.loads(entry.read_text())["finish_reason"] == stored  # reading never rewrites the entry


def test_stats_count_each_lookup_once(tmp_path: Path) -> None:
    cache = AnswerCache(tmp_path)
    cache.put_many([(fp(1), answer())])
    assert set(cache.get_many([fp(1), fp(1), fp(2)])) == {fp(1)}
    assert cache.stats.to_dict() == {"hits": 1, "misses": 1, "expired": 0, "corrupt": 0, "stored": 1, "failed": 0}


def test_a_newer_answer_replaces_the_entry(tmp_path: Path) -> None:
    cache = AnswerCache(tmp_path)
    cache.put_many([(fp(1), answer("first"))])
    cache.put_many([(fp(1), answer("second"))])
    assert cache.get_many([fp(1)])[fp(1)].text == "second"
    assert [p.name for p in (tmp_path / fp(1)[:2]).iterdir()] == [f"{fp(1)}.json"]  # no temporary left


def test_ttl(tmp_path: Path) -> None:
    clock = Clock()
    writer = AnswerCache(tmp_path, clock=clock)
    writer.put_many([(fp(1), answer())])
    reader = AnswerCache(tmp_path, ttl_seconds=3_600, clock=clock)
    clock.now += 3_600
    assert fp(1) in reader.get_many([fp(1)])
    clock.now += 1
    assert reader.get_many([fp(1)]) == {}
    assert (reader.stats.hits, reader.stats.expired, reader.stats.misses) == (1, 1, 0)
    assert fp(1) in AnswerCache(tmp_path, clock=clock).get_many([fp(1)])  # no TTL: never expires


def test_bad_ttl_and_threads(tmp_path: Path) -> None:
    for ttl in (0, -5):
        with pytest.raises(ValueError, match="ttl_seconds"):
            AnswerCache(tmp_path, ttl_seconds=ttl)
    with pytest.raises(ValueError, match="threads"):
        AnswerCache(tmp_path, threads=0)


def test_read_mode_reuses_but_stores_nothing(tmp_path: Path) -> None:
    AnswerCache(tmp_path).put_many([(fp(1), answer())])
    cache = AnswerCache(tmp_path, mode=CacheMode.READ)
    assert fp(1) in cache.get_many([fp(1)])
    assert cache.put_many([(fp(2), answer())]) == 0
    assert not (tmp_path / fp(2)[:2]).exists()


def test_write_mode_stores_but_never_answers(tmp_path: Path) -> None:
    cache = AnswerCache(tmp_path, mode="write")  # type: ignore[arg-type]
    assert cache.put_many([(fp(1), answer())]) == 1
    assert cache.get_many([fp(1)]) == {}
    assert fp(1) in AnswerCache(tmp_path).get_many([fp(1)])


def test_off_mode_does_nothing(tmp_path: Path) -> None:
    AnswerCache(tmp_path).put_many([(fp(1), answer())])
    cache = AnswerCache(tmp_path / "other", mode=CacheMode.OFF)

    def never() -> Iterator[tuple[str, RawResult]]:
        raise AssertionError("items must not be read when the mode does not write")
        yield  # pragma: no cover

    assert cache.put_many(never()) == 0
    assert cache.get_many([fp(1)]) == {} and not (tmp_path / "other").exists()
    assert cache.stats.to_dict() == {"hits": 0, "misses": 0, "expired": 0, "corrupt": 0, "stored": 0, "failed": 0}


@pytest.mark.parametrize("content", [
    b"",
    b'{"v": 1, "fingerprint": "',  # half an entry
    b"\xff\xfe not utf-8",
    b"[1, 2]",
    json.dumps({"v": 99, "fingerprint": fp(1), "stored_at": 1.0, "usage": {}}).encode(),
    json.dumps({"v": 1, "fingerprint": fp(2), "stored_at": 1.0, "usage": {}}).encode(),  # someone else's
    json.dumps({"v": 1, "fingerprint": fp(1), "stored_at": "yesterday", "usage": {}}).encode(),
    json.dumps({"v": 1, "fingerprint": fp(1), "stored_at": 1.0, "usage": {"input_tokens": "many"}}).encode(),
    json.dumps({"v": 1, "fingerprint": fp(1), "stored_at": 1.0, "usage": {}, "text": 5}).encode(),
    json.dumps({"v": 1, "fingerprint": fp(1), "stored_at": 1.0, "usage": {}, "embedding": ["x"]}).encode(),
])
def test_corrupt_entries_are_ignored_with_a_count(tmp_path: Path, content: bytes,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    cache = AnswerCache(tmp_path)
    cache.put_many([(fp(2), answer("secret answer"))])
    (tmp_path / fp(1)[:2]).mkdir(exist_ok=True)
    (tmp_path / fp(1)[:2] / f"{fp(1)}.json").write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="airflow_llm_batch.pipeline.cache"):
        found = cache.get_many([fp(1), fp(2)])
    assert set(found) == {fp(2)}
    assert cache.stats.corrupt == 1 and cache.stats.hits == 1
    assert "1 unreadable" in caplog.text and "secret" not in caplog.text and fp(1) not in caplog.text
    assert cache.put_many([(fp(1), answer("repaired"))]) == 1  # a later answer repairs the entry
    assert cache.get_many([fp(1)])[fp(1)].text == "repaired"


def test_an_unreadable_entry_is_a_miss_not_a_crash(tmp_path: Path) -> None:
    cache = AnswerCache(tmp_path)
    (tmp_path / fp(1)[:2] / f"{fp(1)}.json").mkdir(parents=True)  # a directory where the entry should be
    assert cache.get_many([fp(1)]) == {}
    assert cache.stats.corrupt == 1


def test_a_storage_error_on_write_is_counted_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache = AnswerCache(blocker)
    with caplog.at_level(logging.WARNING, logger="airflow_llm_batch.pipeline.cache"):
        assert cache.put_many([(fp(1), answer())]) == 0
    assert cache.stats.failed == 1 and "could not store 1" in caplog.text


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ABCDEF0123456789", "", "ab/cd" * 8])
def test_fingerprints_are_validated(tmp_path: Path, bad: str) -> None:
    cache = AnswerCache(tmp_path)
    with pytest.raises(ValueError, match="fingerprint"):
        cache.get_many([bad])
    with pytest.raises(ValueError, match="fingerprint"):
        cache.put_many([(bad, answer())])


def test_many_entries_through_the_thread_pool(tmp_path: Path) -> None:
    cache = AnswerCache(tmp_path, threads=8)
    assert cache.put_many((fp(i), answer(f"answer {i}")) for i in range(1_000)) == 1_000
    found = cache.get_many([fp(i) for i in range(1_200)])
    assert len(found) == 1_000 and all(found[fp(i)].text == f"answer {i}" for i in range(1_000))
    assert (cache.stats.hits, cache.stats.misses) == (1_000, 200)


def test_concurrent_writers_of_one_entry_leave_one_valid_entry(tmp_path: Path) -> None:
    """Two runs (here 8 threads, each its own cache object) store the same request at once, while a
    reader keeps looking it up: the reader never sees half an entry and one valid entry is left."""
    writers, rounds = 8, 40
    start = threading.Barrier(writers + 1)
    done = threading.Event()
    errors: list[BaseException] = []
    reader = AnswerCache(tmp_path, threads=1)

    def write(n: int) -> None:
        try:
            cache = AnswerCache(tmp_path, threads=1)
            start.wait()
            for i in range(rounds):
                assert cache.put_many([(fp(1), answer(f"writer {n} round {i}"))]) == 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def read() -> None:
        start.wait()
        while not done.is_set():
            reader.get_many([fp(1)])

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    watcher = threading.Thread(target=read)
    for t in [*threads, watcher]:
        t.start()
    for t in threads:
        t.join()
    done.set()
    watcher.join()
    assert errors == []
    assert reader.stats.corrupt == 0
    entry = AnswerCache(tmp_path).get_many([fp(1)])[fp(1)]
    assert entry.text is not None and entry.text.startswith("writer ")
    assert [p.name for p in (tmp_path / fp(1)[:2]).iterdir()] == [f"{fp(1)}.json"]


# --- not only local files ----------------------------------------------------------------------

@pytest.fixture
def memory_root() -> Iterator[Any]:
    upath = pytest.importorskip("upath")
    root = upath.UPath(f"memory://llm-batch-tests/{uuid.uuid4().hex}/cache")
    try:
        yield root
    finally:
        root.fs.rm(root.path, recursive=True) if root.exists() else None


def test_round_trip_on_an_fsspec_memory_filesystem(memory_root: Any) -> None:
    cache = AnswerCache(memory_root, threads=4)
    assert cache.put_many((fp(i), answer(f"answer {i}")) for i in range(50)) == 50
    assert cache.put_many([(fp(0), answer("again"))]) == 1  # overwrite through fsspec mv
    found = AnswerCache(memory_root).get_many([fp(i) for i in range(60)])
    assert len(found) == 50 and found[fp(0)].text == "again" and found[fp(7)].text == "answer 7"
    names = [p.name for p in (memory_root / fp(0)[:2]).iterdir()]
    assert f"{fp(0)}.json" in names and not any(n.endswith(".tmp") for n in names)


def test_corrupt_entry_on_an_fsspec_memory_filesystem(memory_root: Any) -> None:
    cache = AnswerCache(memory_root)
    path = memory_root / fp(1)[:2] / f"{fp(1)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        fh.write(b"{not json")
    assert cache.get_many([fp(1), fp(2)]) == {}
    assert (cache.stats.corrupt, cache.stats.misses) == (1, 1)


def test_airflow_object_storage_path(tmp_path: Path) -> None:
    sdk = pytest.importorskip("airflow.sdk")
    root = sdk.ObjectStoragePath(f"file://{tmp_path}/cache")
    cache = AnswerCache(root)
    assert cache.put_many([(fp(1), answer())]) == 1
    assert cache.put_many([(fp(1), answer("newer"))]) == 1
    assert AnswerCache(root).get_many([fp(1)])[fp(1)].text == "newer"
    assert [p.name for p in (tmp_path / "cache" / fp(1)[:2]).iterdir()] == [f"{fp(1)}.json"]


def test_entries_on_the_local_disk_are_read_with_plain_files_and_others_through_their_store(tmp_path: Path) -> None:
    from airflow_llm_batch.pipeline.cache_files import EntryFiles, local_folder
    from airflow_llm_batch.sources.rows import to_path

    assert local_folder(tmp_path) == str(tmp_path)
    assert local_folder(to_path(f"file://{tmp_path}")) == str(tmp_path)
    from upath import UPath

    memory = UPath("memory://llmb-cache-test/root")  # an fsspec store that is not a local folder
    assert local_folder(memory) is None and not EntryFiles(memory).local
    fp = "ab" * 32
    for root in (to_path(f"file://{tmp_path}/c"), memory):  # the same answers, whichever way they are read
        files = EntryFiles(root)
        assert files.read(fp) is None
        files.path(fp).parent.mkdir(parents=True, exist_ok=True)
        with files.path(fp).open("wb") as fh:
            fh.write(b'{"v":1}')
        assert files.read(fp) == b'{"v":1}'
        assert files.path(fp) == root / "ab" / f"{fp}.json"
    with pytest.raises(ValueError, match="fingerprint"):
        EntryFiles(tmp_path).read("../../etc/passwd")


def test_read_found_yields_only_the_entries_that_exist_in_order(tmp_path: Path) -> None:
    from upath import UPath

    from airflow_llm_batch.pipeline.cache_files import EntryFiles

    fps = [f"{i:064x}" for i in range(40)]
    for root in (tmp_path / "local", UPath("memory://llmb-cache-test/found")):
        files = EntryFiles(root)
        assert list(files.read_found(fps, threads=4)) == []  # an empty cache (no prefix folder)
        for fp in fps[3::9]:
            files.path(fp).parent.mkdir(parents=True, exist_ok=True)
            with files.path(fp).open("wb") as fh:
                fh.write(fp[-2:].encode())
        assert list(files.read_found(fps, threads=4)) == [(fp, fp[-2:].encode()) for fp in fps[3::9]]
