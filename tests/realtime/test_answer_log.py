"""The real-time answer log: written as answers arrive, read back by a resumed task."""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import ObjectStoragePath

from airflow_llm_batch.pipeline.types import FinishReason, RawResult, Usage
from airflow_llm_batch.realtime.answer_log import AnswerLog


def _ok(custom_id: str, text: str = "yes") -> RawResult:
    return RawResult(custom_id, ok=True, text=text, model="m", usage=Usage(3, 2), finish_reason=FinishReason.STOP)


def test_every_answer_is_on_disk_as_soon_as_it_is_appended(tmp_path: Path) -> None:
    log = AnswerLog(tmp_path / "realtime")
    log.append(_ok("r1"))
    log.append(RawResult("r2", ok=False, error_code="invalid_request_error", error_message="bad"), attempts=2)
    # read by another reader while the first is still open: nothing waits for close()
    answered = AnswerLog(tmp_path / "realtime").answered()
    assert answered["r1"] == _ok("r1")
    assert answered["r2"].error_code == "invalid_request_error" and not answered["r2"].ok
    log.close()


def test_a_line_cut_by_a_kill_is_not_trusted_and_a_later_answer_wins(tmp_path: Path) -> None:
    first = AnswerLog(tmp_path)
    first.append(RawResult("r1", ok=False, error_code="rate_limit_exceeded", error_message="slow down"))
    first.append(_ok("r2"))
    first.close()
    cut = tmp_path / "answers-99999999999999999999-cut.jsonl"
    cut.write_bytes(b'{"custom_id": "r3", "ok": tr')  # killed mid-write
    second = AnswerLog(tmp_path)
    second.append(_ok("r1", "late"))
    second.close()
    answered = AnswerLog(tmp_path).answered()
    assert set(answered) == {"r1", "r2"}
    assert answered["r1"].text == "late"


def test_object_storage_gets_segments_of_flush_every_answers(tmp_path: Path) -> None:
    folder = tmp_path / "realtime"  # written as on a store that cannot append
    log = AnswerLog(folder, flush_every=2, append_in_place=False)
    for i in range(5):
        log.append(_ok(f"r{i}"))
    assert len(AnswerLog(folder).answered()) == 4  # two segments of two; one answer still buffered
    log.close()
    assert sorted(AnswerLog(folder).answered()) == ["r0", "r1", "r2", "r3", "r4"]
    assert len([p for p in folder.iterdir() if p.name.startswith("answers-")]) == 3


def test_an_object_storage_path_is_not_appended_in_place(tmp_path: Path) -> None:
    assert AnswerLog(ObjectStoragePath("s3://bucket/run/realtime"))._local is False
    assert AnswerLog(ObjectStoragePath(f"file://{tmp_path}"))._local is True
    assert AnswerLog(tmp_path)._local is True


def test_an_empty_or_missing_folder_holds_no_answers(tmp_path: Path) -> None:
    assert AnswerLog(tmp_path / "nothing-here").answered() == {}
