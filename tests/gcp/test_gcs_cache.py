"""The request cache on a gs:// root (the GCS emulator, through gcsfs): a window of entries is uploaded
in one concurrent ``fs.pipe`` call, read back whole, and a failed upload is counted, not raised."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from airflow_llm_batch.google.emulators import LocalGcs
from airflow_llm_batch.pipeline.cache import AnswerCache
from airflow_llm_batch.pipeline.storage import is_object_store
from airflow_llm_batch.pipeline.types import RawResult, Usage
from airflow_llm_batch.sources.rows import to_path
from tests.gcp.fixtures import unique_name


def fp(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def answer(text: str) -> RawResult:
    return RawResult("row-1", ok=True, text=text, model="gpt-4o-mini", usage=Usage(21, 1, 0), finish_reason="stop")


class PipeCalls:
    """Counts the filesystem's batch uploads (and their sizes), passing each call through."""

    def __init__(self, fs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[int] = []
        pipe = fs.pipe

        def counted(path: Any, *args: Any, **kwargs: Any) -> Any:
            self.sizes.append(len(path) if isinstance(path, dict) else 1)
            return pipe(path, *args, **kwargs)

        monkeypatch.setattr(fs, "pipe", counted)


@pytest.mark.usefixtures("gcs_connection")
def test_entries_are_uploaded_a_window_at_a_time_and_read_back(gcs_emulator: LocalGcs,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = gcs_emulator.client().create_bucket(unique_name("cache").replace("_", "-"))
    root = to_path(f"gs://{bucket.name}/ws/cache")
    assert is_object_store(root)
    calls = PipeCalls(root.fs, monkeypatch)
    cache = AnswerCache(root, threads=4)  # windows of max(64, 4 * 8) = 64 entries
    assert cache.put_many((fp(i), answer(f"answer {i}")) for i in range(150)) == 150
    assert calls.sizes == [64, 64, 22]
    assert cache.put_many([(fp(0), answer("again")), (fp(1), answer("again"))]) == 2  # the last writer wins
    found = AnswerCache(root).get_many([fp(i) for i in range(160)])
    assert len(found) == 150 and found[fp(0)].text == "again" and found[fp(7)].text == "answer 7"
    objects = {blob.name for blob in gcs_emulator.client().list_blobs(bucket.name)}
    assert f"ws/cache/{fp(7)[:2]}/{fp(7)}.json" in objects
    assert len([n for n in objects if n.endswith(".json")]) == 150 and not any(n.endswith(".tmp") for n in objects)
    assert cache.stats.stored == 152 and cache.stats.failed == 0


@pytest.mark.usefixtures("gcs_connection")
def test_a_failed_batch_upload_is_written_again_one_by_one(gcs_emulator: LocalGcs,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """No such bucket: the batch upload fails as a whole; each entry then goes through the atomic
    writer, which makes the bucket (as every other workspace write does) and stores it."""
    name = unique_name("later").replace("_", "-")
    root = to_path(f"gs://{name}/cache")
    calls = PipeCalls(root.fs, monkeypatch)
    cache = AnswerCache(root, threads=1)
    assert cache.put_many((fp(i), answer(f"answer {i}")) for i in range(5)) == 5
    assert calls.sizes == [5] and (cache.stats.stored, cache.stats.failed) == (5, 0)
    assert {blob.name for blob in gcs_emulator.client().list_blobs(name)} == {
        f"cache/{fp(i)[:2]}/{fp(i)}.json" for i in range(5)}
    assert AnswerCache(root).get_many([fp(4)])[fp(4)].text == "answer 4"
