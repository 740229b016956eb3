"""In-flight records are written one page per batch, found by fingerprint, and the single-record
files of earlier versions stay readable."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_llm_batch.pipeline.inflight import InFlightLog

NOW = 1_790_000_000.0


def fp(i: int) -> str:
    return f"{i:064x}"


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_a_batch_of_records_is_one_file_and_every_record_is_found(tmp_path: Path) -> None:
    log = InFlightLog(tmp_path, clock=lambda: NOW)
    assert log.record([(fp(i), f"row-{i}") for i in range(2_000)], batch_id="batch_1", sent_at=NOW - 10) == 2_000
    assert len(files_under(tmp_path)) == 1
    found = log.find_many([fp(i) for i in range(0, 2_500, 7)], max_age=3600)
    assert set(found) == {fp(i) for i in range(0, 2_000, 7)}
    assert (found[fp(7)].batch_id, found[fp(7)].custom_id, found[fp(7)].sent_at) == ("batch_1", "row-7", NOW - 10)


def test_pages_written_after_a_lookup_are_found_by_the_next_one_and_the_newest_send_wins(tmp_path: Path) -> None:
    log = InFlightLog(tmp_path, clock=lambda: NOW)
    log.record([(fp(1), "a")], batch_id="old", sent_at=NOW - 100)
    assert log.find_many([fp(1)], max_age=3600)[fp(1)].batch_id == "old"
    InFlightLog(tmp_path).record([(fp(1), "b"), (fp(2), "c")], batch_id="new", sent_at=NOW - 5)
    found = log.find_many([fp(1), fp(2)], max_age=3600)
    assert {k: v.batch_id for k, v in found.items()} == {fp(1): "new", fp(2): "new"}
    assert log.find_many([fp(1)], max_age=50)[fp(1)].batch_id == "new"
    assert InFlightLog(tmp_path, clock=lambda: NOW).find_many([fp(1)], max_age=1) == {}


def test_single_record_files_of_earlier_versions_are_still_read(tmp_path: Path) -> None:
    old = tmp_path / fp(3)[:2] / f"{fp(3)}.json"
    old.parent.mkdir(parents=True)
    old.write_text(json.dumps({"v": 1, "fingerprint": fp(3), "batch_id": "b_old", "custom_id": "r3",
                               "sent_at": NOW - 20}))
    log = InFlightLog(tmp_path, clock=lambda: NOW)
    assert log.find_many([fp(3)], max_age=3600)[fp(3)].batch_id == "b_old"
    log.record([(fp(3), "r3")], batch_id="b_page", sent_at=NOW - 1)
    assert log.find_many([fp(3)], max_age=3600)[fp(3)].batch_id == "b_page"


def test_a_broken_page_line_only_loses_its_own_record(tmp_path: Path) -> None:
    log = InFlightLog(tmp_path, clock=lambda: NOW)
    log.record([(fp(4), "r4"), (fp(5), "r5")], batch_id="b", sent_at=NOW)
    (page,) = (tmp_path / "pages").iterdir()
    lines = page.read_text().splitlines()
    page.write_text("\n".join(["{not json", lines[1]]) + "\n")
    assert set(InFlightLog(tmp_path, clock=lambda: NOW).find_many([fp(4), fp(5)], max_age=60)) == {fp(5)}


def test_lookups_before_any_young_record_find_nothing_and_later_pages_are_still_found(tmp_path: Path) -> None:
    log = InFlightLog(tmp_path, clock=lambda: NOW)
    assert log.find_many([fp(1), fp(2)], max_age=3600) == {}  # no folder yet: SQLite is not asked
    InFlightLog(tmp_path).record([(fp(1), "a")], batch_id="too_old", sent_at=NOW - 7200)
    assert log.find_many([fp(1), fp(2)], max_age=3600) == {}  # a page older than asked for is not loaded
    InFlightLog(tmp_path).record([(fp(2), "b")], batch_id="young", sent_at=NOW - 5)
    assert {k: v.batch_id for k, v in log.find_many([fp(1), fp(2)], max_age=3600).items()} == {fp(2): "young"}
    assert {k: v.batch_id for k, v in log.find_many([fp(1)], max_age=9000).items()} == {fp(1): "too_old"}


def test_an_index_opens_its_sqlite_file_with_the_first_record_and_closes_either_way(tmp_path: Path) -> None:
    from airflow_llm_batch.pipeline.inflight_pages import PageIndex, write_page

    unused = PageIndex(tmp_path)
    assert list(unused.find([fp(1)], oldest=0)) == [] and unused._conn is None  # no page: no SQLite file
    unused.close()
    assert write_page(tmp_path, NOW, [{"v": 1, "fingerprint": fp(1), "batch_id": "b", "custom_id": "r1",
                                       "sent_at": NOW}])
    used = PageIndex(tmp_path)
    assert [(found, entry["batch_id"]) for found, entry in used.find([fp(1), fp(2)], oldest=0)] == [(fp(1), "b")]
    used.close()
    used.close()


def test_a_page_is_written_while_its_records_come_in_and_appears_whole_at_the_end(tmp_path: Path) -> None:
    # each line orjson makes holds a 4 KiB buffer: the 50,000 lines of a batch held at once were ~196 MiB
    folder = tmp_path / "pages"
    on_disk: list[tuple[int, int]] = []
    visible: list[str] = []

    def items() -> Iterator[tuple[str, str]]:
        for i in range(5_000):
            if i % 1_000 == 999:  # what the page's file holds while record is still reading the batch
                files = list(folder.iterdir()) if folder.exists() else []
                on_disk.append((i, sum(p.stat().st_size for p in files)))
                visible.extend([p.name for p in files if not p.name.startswith(".")])
            yield fp(i), f"row-{i}"

    assert InFlightLog(tmp_path).record(items(), batch_id="batch_s", sent_at=NOW) == 5_000
    line = len(json.dumps({"v": 1, "fingerprint": fp(0), "batch_id": "batch_s", "custom_id": "row-0",
                           "sent_at": NOW}, separators=(",", ":")))
    assert on_disk and all(size >= (i - 200) * line for i, size in on_disk)  # a write buffer behind, no more
    assert visible == []  # readers never see a part of the page
    (page,) = folder.iterdir()
    assert len(page.read_bytes().splitlines()) == 5_000
    found = InFlightLog(tmp_path, clock=lambda: NOW).find_many([fp(0), fp(4_999)], max_age=60)
    assert {f.custom_id for f in found.values()} == {"row-0", "row-4999"}


def test_a_bad_fingerprint_in_the_batch_raises_and_leaves_no_page(tmp_path: Path) -> None:
    items = [(fp(i), f"row-{i}") for i in range(3_000)] + [("../not-a-fingerprint", "row-x")]
    with pytest.raises(ValueError, match="fingerprint"):
        InFlightLog(tmp_path).record(iter(items), batch_id="b", sent_at=NOW)
    assert files_under(tmp_path) == []
    assert InFlightLog(tmp_path).record(iter([]), batch_id="b", sent_at=NOW) == 0
    assert files_under(tmp_path) == []  # no records: no page


def test_a_page_that_cannot_be_stored_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with caplog.at_level(logging.WARNING, logger="airflow_llm_batch.pipeline.inflight"):
        assert InFlightLog(blocker).record([(fp(1), "r1"), (fp(2), "r2")], batch_id="batch_7", sent_at=NOW) == 0
    assert "batch_7" in caplog.text and "row" not in caplog.text


def test_an_error_reading_the_batch_s_requests_is_raised_not_taken_for_a_storage_error(tmp_path: Path) -> None:
    def items() -> Iterator[tuple[str, str]]:
        yield fp(1), "row-1"
        raise OSError("the key index went away")

    with pytest.raises(OSError, match="key index"):
        InFlightLog(tmp_path).record(items(), batch_id="b", sent_at=NOW)
    assert files_under(tmp_path) == []


def test_a_page_is_read_and_indexed_a_window_of_records_at_a_time(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_llm_batch.pipeline import inflight_pages
    from airflow_llm_batch.pipeline.inflight_pages import PageIndex

    monkeypatch.setattr(inflight_pages, "_INSERT", 1_000)
    InFlightLog(tmp_path).record(((fp(i), f"row-{i}") for i in range(4_500)), batch_id="b", sent_at=NOW)
    windows: list[int] = []
    insert = PageIndex._insert

    def counted(index: PageIndex, rows: list[tuple[str, str, float]]) -> None:
        windows.append(len(rows))
        insert(index, rows)

    monkeypatch.setattr(PageIndex, "_insert", counted)
    found = InFlightLog(tmp_path, clock=lambda: NOW).find_many([fp(i) for i in range(0, 4_600, 9)], max_age=60)
    assert windows == [1_000, 1_000, 1_000, 1_000, 500]  # never the whole page at once
    assert set(found) == {fp(i) for i in range(0, 4_500, 9)}
    assert found[fp(4_499 - 4_499 % 9)].custom_id == f"row-{4_499 - 4_499 % 9}"
