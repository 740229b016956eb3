"""The compiled request line (compiled_line.py) writes what the slow path writes: the same chunk files,
key index files, token estimates, digest and row errors, for real backends and awkward text."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from anthropic import AsyncAnthropic
from google import genai
from google.genai import types as genai_types
from openai import AsyncOpenAI

from airflow_llm_batch.backends.anthropic import AnthropicBatchBackend
from airflow_llm_batch.backends.gemini import GeminiBatchBackend
from airflow_llm_batch.backends.openai import OpenAIBatchBackend
from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.pipeline import compiled_line
from airflow_llm_batch.pipeline import prepare as prepare_module
from airflow_llm_batch.pipeline.fingerprint import request_fingerprint
from airflow_llm_batch.pipeline.prepare import LineFormat, PrepareOptions, prepare
from airflow_llm_batch.pipeline.render import RequestSpec
from airflow_llm_batch.pipeline.types import BatchLimits, Endpoint, LLMRequest

LOOPBACK = "http://127.0.0.1:9"  # never contacted: preparing makes no request

AWKWARD = ["plain words", 'say "hi" \\ back', "two\nlines\r\nand\ttabs", "émoji 🎉🧪 and 中文 and ü",
           "\x00\x01\x1f control", "</script> & <b>", "{{ row.text }} {% if %}", "  padded  ", "\u2028\u2029",
           "x" * 40_000, "\u210c\U0001d522\U0001d529 " * 500, "a'b\"c", "1e-07", "null"]


def openai_backend() -> OpenAIBatchBackend:
    return OpenAIBatchBackend(AsyncOpenAI(api_key="k", base_url=f"{LOOPBACK}/v1", max_retries=0))


def anthropic_backend() -> AnthropicBatchBackend:
    return AnthropicBatchBackend(AsyncAnthropic(api_key="k", base_url=LOOPBACK, max_retries=0))


def gemini_backend() -> GeminiBatchBackend:
    return GeminiBatchBackend(genai.Client(api_key="k", http_options=genai_types.HttpOptions(base_url=LOOPBACK)))


@dataclass
class Limited:
    """A real backend's line format under smaller limits (to reach the byte limit)."""

    inner: LineFormat
    limits: BatchLimits

    def request_line(self, request: LLMRequest) -> dict[str, object]:
        return self.inner.request_line(request)

    def custom_id_for(self, key: str) -> str:
        return self.inner.custom_id_for(key)


def varied_rows(n: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(n):
        text = AWKWARD[i % len(AWKWARD)]
        rows.append({"id": f"row {i} é" if i % 7 == 0 else f"T-{i}", "text": f"{text} #{i}", "n": i})
    return rows


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: list[Any], backend: LineFormat,
             spec: RequestSpec, options: PrepareOptions | None = None) -> tuple[Any, Any, int]:
    """(fast outcome, slow outcome, rows written by the compiled line alone); an outcome is
    (chunk sizes, digest, files) or the InvalidInputError's message."""
    options = options or PrepareOptions()
    monkeypatch.setattr(prepare_module, "CHECKED_ROWS", 2)
    used = []
    real_line = compiled_line.CompiledLine.line_and_prompt

    def counting(self: compiled_line.CompiledLine, custom_id: str, prompt: str) -> tuple[bytes, bytes] | None:
        used.append(1)
        return real_line(self, custom_id, prompt)

    monkeypatch.setattr(compiled_line.CompiledLine, "line_and_prompt", counting)
    fast = outcome(tmp_path / "fast", rows, backend, spec, options)
    monkeypatch.setattr(prepare_module.CompiledLine, "of", classmethod(lambda cls, line_of: None))
    slow = outcome(tmp_path / "slow", rows, backend, spec, options)
    return fast, slow, len(used)


def outcome(folder: Path, rows: list[Any], backend: LineFormat, spec: RequestSpec, options: PrepareOptions) -> Any:
    try:
        prepared = prepare(rows, spec, folder=folder, backend=backend, options=options)
    except InvalidInputError as exc:
        return str(exc)
    sizes = [(c.count, c.bytes, c.tokens) for c in prepared.chunks]
    return sizes, prepared.digest, prepared.follower_rows, files_of(folder)


SPECS = {
    "openai chat": (openai_backend, RequestSpec(model="gpt-4o-mini", prompt="{{ row.text }}", key="id")),
    "openai chat, system, schema, params": (openai_backend, RequestSpec(
        model="gpt-4o-mini", prompt="Classify: {{ row['text'] }} ({{ row.n }})", key="id",
        system_prompt="You label {{ kind }}.", context={"kind": "tickets"}, params={"temperature": 0.2},
        response_schema={"type": "object", "properties": {"label": {"type": "string"}}})),
    "openai embeddings": (openai_backend, RequestSpec(model="text-embedding-3-small", prompt="{{ row.text }}",
                                                      key="id", endpoint=Endpoint.EMBEDDINGS)),
    "openai responses": (openai_backend, RequestSpec(model="gpt-4o-mini", prompt="{{ row.text }}", key="id",
                                                     endpoint=Endpoint.RESPONSES, system_prompt="Be brief.")),
    "anthropic": (anthropic_backend, RequestSpec(model="claude-3-5-haiku-latest", prompt="{{ row.text }}",
                                                 key="id", params={"max_tokens": 64})),
    "gemini": (gemini_backend, RequestSpec(model="gemini-2.0-flash", prompt="Q: {{ row.text }}", key="id")),
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_same_files_digest_and_tokens_as_the_slow_path(name: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    make_backend, spec = SPECS[name]
    fast, slow, compiled_rows = run_both(tmp_path, monkeypatch, varied_rows(120), make_backend(), spec)
    assert not isinstance(fast, str), fast
    assert fast == slow
    assert compiled_rows == 120


def test_same_errors_as_the_slow_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows: list[Any] = varied_rows(40)
    rows += [{"id": "missing-text"}, {"id": "blank", "text": "   "}, {"id": "T-3", "text": "duplicate key"},
             {"id": "huge", "text": "y" * 9_000}, ["not", "a", "mapping"], {"text": "no key"}, {"id": "", "text": "x"}]
    backend = Limited(openai_backend(), BatchLimits(max_requests=50, max_bytes=10**9, max_request_bytes=8_000))
    spec = RequestSpec(model="gpt-4o-mini", prompt="{{ row.text }}", key="id")
    fast, slow, compiled_rows = run_both(tmp_path, monkeypatch, rows, backend, spec)
    assert isinstance(fast, str) and fast == slow
    for reason in ("missing", "prompt renders empty", "over the provider's limit", "T-3", "row is a list"):
        assert reason in fast
    assert compiled_rows > 30


def test_same_token_budget_errors_and_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [{"id": f"r{i}", "text": "word " * (i % 50 + 1)} for i in range(200)]
    spec = RequestSpec(model="gpt-4o-mini", prompt="{{ row.text }}", key="id")
    options = PrepareOptions(max_tokens_per_chunk=500, max_rows_per_chunk=30)
    fast, slow, compiled_rows = run_both(tmp_path, monkeypatch, rows, openai_backend(), spec, options)
    assert fast == slow and len(fast[0]) > 6 and compiled_rows == 200
    rows.append({"id": "big", "text": "word " * 600})
    fast, slow, _ = run_both(tmp_path / "again", monkeypatch, rows, openai_backend(), spec, options)
    assert isinstance(fast, str) and fast == slow and "enqueued-token budget of 500" in fast


def test_same_fingerprints_and_followers_with_the_cache_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [{"id": f"r{i}", "text": AWKWARD[i % 5]} for i in range(60)]  # repeats become followers
    spec = RequestSpec(model="gpt-4o-mini", prompt="{{ row.text }}", key="id")
    options = PrepareOptions(fingerprint=lambda line: request_fingerprint("openai", line))
    fast, slow, compiled_rows = run_both(tmp_path, monkeypatch, rows, openai_backend(), spec, options)
    assert fast == slow and fast[2] == 55 and compiled_rows == 60


def test_a_line_that_does_not_match_its_compiled_form_is_not_trusted(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A backend whose line depends on the prompt beyond embedding it: the check on the first rows
    drops the compiled line and every row is written by the slow path."""

    class Shouting(OpenAIBatchBackend):
        def request_line(self, request: LLMRequest) -> dict[str, object]:
            line = super().request_line(request)
            return {**line, "loud": request.prompt.isupper()}

    backend = Shouting(AsyncOpenAI(api_key="k", base_url=f"{LOOPBACK}/v1", max_retries=0))
    rows = [{"id": f"r{i}", "text": "LOUD" if i % 2 else "quiet"} for i in range(20)]
    spec = RequestSpec(model="gpt-4o-mini", prompt="{{ row.text }}", key="id")
    fast, slow, compiled_rows = run_both(tmp_path, monkeypatch, rows, backend, spec)
    assert fast == slow and compiled_rows == 2


def test_no_compiled_line_when_the_key_is_written_apart(tmp_path: Path) -> None:
    def line_of(custom_id: str, prompt: str) -> dict[str, object]:
        return {"custom_id": custom_id, "key": compiled_line.KEY_SENTINEL, "prompt": prompt}

    assert compiled_line.CompiledLine.of(line_of) is None
    assert compiled_line.CompiledLine.of(lambda cid, prompt: {"a": prompt, "b": prompt, "c": cid}) is None
    made = compiled_line.CompiledLine.of(lambda cid, prompt: {"p": prompt, "c": cid})
    assert made is not None and made.line("x", 'q"') == b'{"p":"q\\"","c":"x"}\n'


@pytest.mark.parametrize("prompt", ["{{ row.text }}", "Say: {{ row.text | trim }}"], ids=["compiled", "jinja"])
def test_a_lone_surrogate_is_a_row_error_naming_the_row_without_its_text(tmp_path: Path, prompt: str) -> None:
    rows = [{"id": "fine", "text": "all good"}, {"id": "broken", "text": "secret words \ud800 more"}]
    spec = RequestSpec(model="gpt-4o-mini", prompt=prompt, key="id")
    with pytest.raises(InvalidInputError) as caught:
        prepare(rows, spec, folder=tmp_path, backend=openai_backend())
    message = str(caught.value)
    assert "row 1 (key 'broken')" in message and "not valid Unicode" in message and "nothing was submitted" in message
    assert "secret words" not in message  # the row is named, its text is not shown
    assert not list((tmp_path / "chunks").glob("*.requests.jsonl")) or all(
        b"broken" not in p.read_bytes() for p in (tmp_path / "chunks").glob("*.requests.jsonl"))
