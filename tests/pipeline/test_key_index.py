"""Key index records (key_index.KeyEntry): the line codec, and run folders written by the previous
version (plain dicts with one-letter keys) still resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI

from airflow_llm_batch.backends.openai import OpenAIBatchBackend
from airflow_llm_batch.pipeline.cache import AnswerCache
from airflow_llm_batch.pipeline.key_index import KeyEntry, first_entry, read_key_index, write_key_index
from airflow_llm_batch.pipeline.render import RequestSpec
from airflow_llm_batch.pipeline.run import BatchRun
from tests.run_helpers import drive


def test_an_entry_round_trips_and_writes_only_the_fields_it_has() -> None:
    full = KeyEntry("t_1", "t 1", 7, fingerprint="ab" * 32, adopted_id="other-7", carry={"team": "é"})
    assert KeyEntry.from_line(full.to_line()) == full
    assert json.loads(full.to_line()) == {"c": "t_1", "k": "t 1", "n": 7, "f": "ab" * 32, "a": "other-7",
                                          "carry": {"team": "é"}}
    assert json.loads(KeyEntry("c", "k", 0).to_line()) == {"c": "c", "k": "k", "n": 0}
    assert KeyEntry("c", "k", 0, "cd" * 32).to_line() == b'{"c":"c","k":"k","n":0,"f":"' + b"cd" * 32 + b'"}\n'
    with_carry = KeyEntry("c", "k", 0, "cd" * 32, carry={"x": 1}).to_line()
    assert with_carry.endswith(b'"f":"' + b"cd" * 32 + b'","carry":{"x":1}}\n')
    assert full.answer_id == "other-7" and full.adopted_as(None).answer_id == "t_1"


def test_lines_written_by_the_previous_version_are_read(tmp_path: Path) -> None:
    """The previous version wrote dicts with json.dumps defaults (spaces), in its own key order."""
    old = ('{"c": "a_b", "k": "a b", "n": 0, "carry": {"team": "x"}, "f": "' + "cd" * 32 + '"}\n'
           '{"c": "z", "k": "z", "n": 1, "f": "' + "ef" * 32 + '", "a": "dead-row-1"}\n'
           '\n')
    (tmp_path / "keys.jsonl").write_text(old)
    entries = list(read_key_index(tmp_path / "keys.jsonl"))
    assert entries == [KeyEntry("a_b", "a b", 0, fingerprint="cd" * 32, carry={"team": "x"}),
                       KeyEntry("z", "z", 1, fingerprint="ef" * 32, adopted_id="dead-row-1")]
    assert first_entry(tmp_path / "keys.jsonl") == entries[0]
    write_key_index(tmp_path / "again.jsonl", entries)
    assert list(read_key_index(tmp_path / "again.jsonl")) == entries
    (tmp_path / "empty.jsonl").write_text("")
    assert first_entry(tmp_path / "empty.jsonl") is None


def _as_previous_version(path: Path) -> None:
    """Rewrite a key index exactly as the previous version wrote it (a dict per line)."""
    lines = []
    for entry in read_key_index(path):
        old: dict[str, Any] = {"c": entry.custom_id, "k": entry.key, "n": entry.row_no}
        if entry.carry is not None:
            old["carry"] = entry.carry
        if entry.fingerprint is not None:
            old["f"] = entry.fingerprint
        lines.append(json.dumps(old, ensure_ascii=False, default=str) + "\n")
    path.write_text("".join(lines))


async def test_a_run_resumed_over_key_files_of_the_previous_version_lands_every_row_once(
        emulator: Any, tmp_path: Path) -> None:
    rows = [{"id": f"old-format-{i:03d}", "text": f"resume old keys {i}", "team": f"t{i % 2}"} for i in range(30)]
    spec = RequestSpec(model="gpt-4o-mini", prompt="{{ row.text }}", key="id")
    tags = {"dag_id": "d", "task_id": "t", "run_id": "old-keys"}
    backend = OpenAIBatchBackend(AsyncOpenAI(base_url=emulator.openai_base_url, api_key="k"))
    first = BatchRun(tmp_path / "run", backend, tags=tags, cache=AnswerCache(tmp_path / "cache"))
    manifest = first.prepare_or_load(lambda: rows, spec, max_rows_per_chunk=10, carry=("team",))
    await first.submit(manifest)
    for chunk in manifest.chunks:  # the worker dies; the folder is as the previous version left it
        _as_previous_version(tmp_path / "run" / chunk.keys)

    resumed = BatchRun(tmp_path / "run", backend, tags=tags, cache=AnswerCache(tmp_path / "cache"))
    manifest = resumed.prepare_or_load(lambda: rows, spec, max_rows_per_chunk=10, carry=("team",))
    await drive(resumed, manifest)
    await backend.aclose()
    results = sorted(resumed.iter_results(manifest), key=lambda r: r.key)
    assert [(r.key, r.custom_id, r.extra["team"]) for r in results] == [(r["id"], r["id"], r["team"]) for r in rows]
    assert {r.status.value for r in results} == {"succeeded"} and all("fingerprint" in r.extra for r in results)
    paid = emulator.stats()["openai"]["succeeded_by_custom_id"]
    assert all(paid[r["id"]] == 1 for r in rows)


@pytest.mark.parametrize(("data", "expected"), [
    ({"c": "a", "k": "b", "n": 3}, KeyEntry("a", "b", 3)),
    ({"c": 7, "k": 8}, KeyEntry("7", "8", -1)),
    ({"c": "a", "k": "b", "n": "4", "f": "fp", "a": "old", "carry": {"x": 1}},
     KeyEntry("a", "b", 4, "fp", "old", {"x": 1})),
    ({"c": "a", "k": "b", "n": True}, KeyEntry("a", "b", 1)),
])
def test_an_entry_is_read_from_any_line_it_was_ever_written_as(data: dict[str, Any], expected: KeyEntry) -> None:
    entry = KeyEntry.from_json(data)
    assert entry == expected and type(entry.custom_id) is str and type(entry.row_no) is int
    assert KeyEntry.from_line(entry.to_line()) == entry


READ_LINES = [
    b'{"c":"t_1","k":"t 1","n":0}\n',
    b'\n',
    b'{"c":"t_2","k":"t 2","n":1,"f":"fp"}\n',
    b'{"c":"t_3","k":"t 3","n":2,"carry":{"big":123456789012345678901234567890}}\n',
    b'{"c":7,"k":8,"n":"3"}\n',
    b'{"c":"t_5","k":"t 5","a":"old_5"}\n',
    b'   \r\n',
    b'{"c":"t_6","k":"t 6","n":5}\n',
    # lines the typed reader takes, or hands on to from_line: each must read as from_line reads it
    b'{"c":"t_7","k":"t 7","n":6,"f":"fp7","a":"old_7"}\n',
    b'{"c":"t_8","k":"t 8","n":7,"f":null,"a":null,"carry":null}\n',
    b'{"c":"t_9","k":"t 9","n":8,"c":"t_9b"}\n',  # a key twice: the last value, as orjson reads it
    b'{"c":"t_10","k":"t 10","n":true}\n',
    b'{"c":"t_11","k":"t 11","n":99999999999999999999}\n',
    b'{"c":"t_12","k":"t 12","n":11,"z":1}\n',
    b'{"c":"t_13","k":"caf\xc3\xa9 \\u00e9 \\ud83d\\ude00","n":12}\n',
    b'{"c":"t_14","k":"t 14","n":13,"f":5}\n',
    b'{"c":"t_15","k":"t 15","n":14,"carry":{"team":"ops","n":[1,2.5,null]}}',
]


def test_reading_a_file_gives_each_line_as_from_line_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "k.keys.jsonl"
    path.write_bytes(b"".join(READ_LINES))
    entries = list(read_key_index(path))
    assert entries == [KeyEntry.from_line(line) for line in READ_LINES if line.strip()]
    assert [type(entry) for entry in entries] == [KeyEntry] * 15
    assert [type(entry.row_no) for entry in entries] == [int] * 15
    assert entries[0] == KeyEntry("t_1", "t 1", 0) and entries[0].carry is None and entries[0].answer_id == "t_1"
    assert entries[2].carry == {"big": 123456789012345678901234567890}  # read exactly, not as a float
    assert entries[3] == KeyEntry("7", "8", 3) and entries[4].row_no == -1 and entries[4].answer_id == "old_5"
    assert entries[6] == KeyEntry("t_7", "t 7", 6, "fp7", "old_7") and entries[8].custom_id == "t_9b"
    assert entries[12].key == "caf\u00e9 \u00e9 \U0001f600"
    assert entries[14].carry == {"team": "ops", "n": [1, 2.5, None]}


def test_a_broken_line_in_a_key_index_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "k.keys.jsonl"
    path.write_bytes(b'{"c":"t_1","k":"t 1","n":0}\n{"c":"t_2",\n')
    with pytest.raises(ValueError):
        list(read_key_index(path))
