"""The emulator's JSON codec on the wire: orjson in and out, with what the standard library accepted
before still accepted, what it refused still refused, and the body hash of every body unchanged."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from airflow_llm_batch.emulator import Emulator, EmulatorConfig
from airflow_llm_batch.emulator.realtime_state import body_hash

BODIES: list[Any] = [
    {"model": "m", "messages": [{"role": "user", "content": "plain"}]},
    {"b": 1, "a": {"z": [True, False, None], "y": -3}},  # key order, null
    {"t": 0.7, "u": 1e-05, "v": 1e16, "w": -0.0, "x": 2.5e-300},  # floats orjson spells otherwise
    {"big": 2**70, "neg": -(2**63), "u64": 2**64 - 1},  # beyond what orjson writes
    {"nan": math.nan, "inf": -math.inf},  # only json reads these
    {"text": "é ü 漢字 😀 \u2028 \x7f", "ctl": "".join(map(chr, range(32))), "q": "\"\\/"},
    {"clé": {"é": 1, "e": 2, "z": 3, "É": 4}},
    {"text": "version 3.5, 1e5 and null in a string"},
    [],
    "a string",
]


def _reference_hash(body: Any) -> str:
    """The body hash as the emulator defined it before orjson: sorted compact ``json.dumps``."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_body_hash_is_the_sorted_json_dumps_hash(body: Any) -> None:
    assert body_hash(body) == _reference_hash(body)


def test_body_hash_ignores_key_order() -> None:
    assert body_hash({"a": 1, "b": [1, {"c": 2, "d": 3}]}) == body_hash({"b": [1, {"d": 3, "c": 2}], "a": 1})


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(api_key="k")) as emulator:
        yield emulator


def _post(emu: Emulator, content: bytes, content_type: str = "application/json") -> httpx.Response:
    headers = {"Authorization": "Bearer k", "Content-Type": content_type}
    return httpx.post(f"{emu.openai_base_url}/chat/completions", content=content, headers=headers, timeout=30)


def test_answers_are_utf8_json_with_the_json_content_type(emu: Emulator) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "héllo 漢字"}]}
    answer = _post(emu, json.dumps(body).encode())
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json; charset=utf-8"
    assert "héllo 漢字".encode() in answer.content, "non-ASCII sent as UTF-8, as a model writes it"
    assert json.loads(answer.content)["choices"][0]["message"]["content"] == "héllo 漢字"


def test_bodies_only_the_standard_library_reads_are_still_answered(emu: Emulator) -> None:
    nan = b'{"model": "m", "temperature": NaN, "messages": [{"role": "user", "content": "nan"}]}'
    latin1 = json.dumps({"model": "m", "messages": [{"role": "user", "content": "café"}]},
                        ensure_ascii=False).encode("latin-1")
    big = b'{"model": "m", "seed": 123456789012345678901234, "messages": [{"role": "user", "content": "big"}]}'
    assert _post(emu, nan).status_code == 200
    charset = _post(emu, latin1, "application/json; charset=latin-1")
    assert charset.status_code == 200 and charset.json()["choices"][0]["message"]["content"] == "café"
    assert _post(emu, big).status_code == 200
    stats = emu.stats()["realtime"]
    assert stats["answered"] == 3 and len(stats["answered_by_body"]) == 3


def test_what_is_not_json_is_refused_as_before(emu: Emulator) -> None:
    for content in (b"{not json", b'{"a": 1}  trailing', b"\xff\xfe{}", b""):
        refused = _post(emu, content)
        assert refused.status_code == 400, content
        assert refused.json()["error"]["message"] == "The request body is not valid JSON."
    not_object = _post(emu, b"[1, 2]")
    assert not_object.status_code == 400
    assert not_object.json()["error"]["message"] == "The request body must be a JSON object."
    assert emu.stats()["realtime"]["answered"] == 0
