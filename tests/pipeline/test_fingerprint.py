"""The compiled request fingerprint (fingerprint.py) gives request_fingerprint's value for every prompt,
or refuses to compile, for real backends' lines and awkward text."""

from __future__ import annotations

import hashlib
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

import orjson
import pytest

from airflow_llm_batch.pipeline import prepare as prepare_module
from airflow_llm_batch.pipeline.compiled_line import ID_SENTINEL, KEY_SENTINEL
from airflow_llm_batch.pipeline.fingerprint import CompiledFingerprint, endpoint_identity, request_fingerprint
from airflow_llm_batch.pipeline.prepare import PrepareOptions, prepare
from airflow_llm_batch.pipeline.render import RequestRenderer, RequestSpec
from tests.pipeline.test_compiled_line import AWKWARD, anthropic_backend, files_of, gemini_backend, openai_backend

#: strings where JSON writers disagree: control characters, DEL, line separators, non-BMP, escapes
TRICKY = [*AWKWARD, "\x7f del", "\u2028\u2029 separators", "\U0001f600\U00010348", "back\\slash \"quoted\"",
          "\x08\x0c\b\f", "/ slash", "\ufeff bom", "\u00e9\u0301 combining", "", "'", "\x1b[31m"]


@pytest.mark.parametrize("make_backend", [openai_backend, anthropic_backend, gemini_backend])
def test_compiled_fingerprint_equals_the_slow_one(make_backend: Any) -> None:
    backend = make_backend()
    renderer = RequestRenderer(RequestSpec(model="m-1", prompt="{{ row.text }}", system_prompt="Be brief.", key="id"))

    def line_of(custom_id: str, prompt: str, key: str = KEY_SENTINEL) -> dict[str, object]:
        return backend.request_line(renderer.fixed_request(custom_id, key, prompt))

    endpoint = endpoint_identity(backend)
    slow = lambda line: request_fingerprint(backend.name, line, endpoint)  # noqa: E731
    compiled = CompiledFingerprint.of(slow, line_of)
    assert compiled is not None
    for i, prompt in enumerate(TRICKY):
        assert compiled.fingerprint(prompt) == slow(line_of(f"row-{i}", prompt, f"key {i}")), repr(prompt)
        assert compiled.of_json(orjson.dumps(prompt)) == compiled.fingerprint(prompt), repr(prompt)


def test_orjson_writes_every_code_point_as_the_fingerprint_encoder_does() -> None:
    """What lets prepare.py hash the prompt's bytes of its compiled line (CompiledFingerprint.of_json)."""
    points = [*range(0xD800), *range(0xE000, 0x110000)]  # all but lone surrogates (both refuse those)
    for start in range(0, len(points), 4096):
        text = "".join(map(chr, points[start:start + 4096]))
        assert orjson.dumps(text) == encode_basestring(text).encode("utf-8"), hex(points[start])
    each = [chr(point) for point in points[:0x800]]  # one by one where escapes differ most
    assert [orjson.dumps(c) for c in each] == [encode_basestring(c).encode("utf-8") for c in each]
    with pytest.raises(TypeError):
        orjson.dumps("\ud800")


def test_a_lone_surrogate_has_no_compiled_fingerprint() -> None:
    compiled = CompiledFingerprint.of(lambda line: request_fingerprint("p", line), lambda c, p: {"c": p})
    assert compiled is not None and compiled.fingerprint("bad \ud800") is None


def test_no_compiled_fingerprint_for_other_functions_or_lines() -> None:
    def line_of(custom_id: str, prompt: str) -> dict[str, object]:
        return {"custom_id": custom_id, "body": {"messages": [prompt]}}

    def fp(line: dict[str, Any]) -> str:
        return request_fingerprint("openai", line)

    assert CompiledFingerprint.of(lambda line: fp(line)[:32], line_of) is None  # not the digest itself
    assert CompiledFingerprint.of(lambda line: fp(line) if fp({}) else "", line_of) is None  # hashes twice
    assert CompiledFingerprint.of(lambda line: hashlib.sha256(repr(line).encode()).hexdigest(), line_of) is None
    assert CompiledFingerprint.of(fp, lambda c, p: {"body": [p, p]}) is None  # the prompt twice
    assert CompiledFingerprint.of(fp, lambda c, p: {"body": {"meta": c, "m": p}}) is None  # the custom_id kept
    assert CompiledFingerprint.of(fp, lambda c, p: {"body": {"k": KEY_SENTINEL, "m": p}}) is None  # the key kept
    assert CompiledFingerprint.of(fp, lambda c, p: {"body": {"m": p + ID_SENTINEL}}) is None
    assert CompiledFingerprint.of(fp, lambda c, p: 1 / 0) is None  # type: ignore[arg-type,return-value]
    assert CompiledFingerprint.of(fp, line_of) is not None


def test_prepare_with_compiled_fingerprints_writes_what_the_slow_path_writes(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the checked rows, every key index entry and follower carries the slow path's fingerprint."""
    rows = [{"id": f"r{i}", "text": f"{TRICKY[i % len(TRICKY)]} {i % 150}"} for i in range(400)]
    spec = RequestSpec(model="gpt-4o-mini", prompt="{{ row.text }}", key="id")
    options = PrepareOptions(fingerprint=lambda line: request_fingerprint("openai", line, "openai|x"))
    used = []
    real = CompiledFingerprint.of_json
    monkeypatch.setattr(CompiledFingerprint, "of_json", lambda self, text: used.append(1) or real(self, text))
    fast = prepare(rows, spec, folder=tmp_path / "fast", backend=openai_backend(), options=options)
    monkeypatch.setattr(prepare_module.CompiledFingerprint, "of", classmethod(lambda cls, fp, line_of: None))
    slow = prepare(rows, spec, folder=tmp_path / "slow", backend=openai_backend(), options=options)
    assert len(used) == 400 and fast.follower_rows == slow.follower_rows == 250
    assert files_of(tmp_path / "fast") == files_of(tmp_path / "slow")


def test_a_compiled_fingerprint_that_differs_is_dropped_for_the_run(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CompiledFingerprint, "of_json", lambda self, text: "0" * 64)
    rows = [{"id": f"r{i}", "text": f"text {i}"} for i in range(100)]
    spec = RequestSpec(model="gpt-4o-mini", prompt="{{ row.text }}", key="id")
    options = PrepareOptions(fingerprint=lambda line: request_fingerprint("openai", line))
    prepared = prepare(rows, spec, folder=tmp_path, backend=openai_backend(), options=options)
    keys = b"".join(p.read_bytes() for p in (tmp_path / "chunks").glob("*.keys.jsonl"))
    assert prepared.follower_rows == 0 and b"0" * 64 not in keys and keys.count(b'"f":') == 100
