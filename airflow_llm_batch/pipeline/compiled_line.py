"""The fast path of writing request lines: a line compiled once per run, with holes for the two
values that change from row to row (the custom_id and the prompt).

When the prompt only prints row fields (field_template.py) and the system prompt does not use the
row, every request of a run is the same but for its custom_id and prompt. The backend's
``request_line`` is then called once, with sentinel values, and its JSON bytes are cut at the
sentinels: a row's line is ``head + json(custom_id) + middle + json(prompt) + tail`` (or the
prompt first), and its token estimate is the constant part (counted once) plus the prompt's count,
exact on a sample of the rows and calibrated on it for the others (token_sampling.py).
orjson writes a string the same way wherever it stands in a document, so the bytes are those of
``fast_json.dumps_line`` of the whole request.

A backend whose line is not cut this way (a sentinel missing or repeated, the key written apart
from the custom_id, an error) gets no compiled line; prepare.py also checks the first rows against
the slow path and drops the compiled line for the run at the first difference.

Example::

    compiled = CompiledLine.of(lambda cid, prompt: backend.request_line(request(cid, prompt)))
    data = compiled.line("row-1", "Classify: great product")   # None: use the slow path
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from airflow_llm_batch.pipeline import fast_json
from airflow_llm_batch.pipeline.token_count import ENCODING, count_text_tokens, tokenizer_name
from airflow_llm_batch.pipeline.token_sampling import SampledCount
from airflow_llm_batch.pipeline.tokens import estimate_document_tokens

#: values no template or backend writes: each must appear exactly once in the sentinel line
PROMPT_SENTINEL = "llm-batch-prompt-9c1e5b7a"
ID_SENTINEL = "llm-batch-custom-id-9c1e5b7a"
KEY_SENTINEL = "llm-batch-key-9c1e5b7a"

#: a request line of the run for (custom_id, prompt), the key being ``KEY_SENTINEL``
LineOf = Callable[[str, str], dict[str, object]]


class CompiledLine:
    """A request line with a hole for the custom_id and one for the prompt."""

    def __init__(self, parts: tuple[bytes, bytes, bytes], prompt_first: bool, constant_tokens: int) -> None:
        self.parts, self.prompt_first, self.constant_tokens = parts, prompt_first, constant_tokens
        #: bytes of a line that are not the prompt's or the custom_id's text
        self.fixed_bytes = sum(map(len, parts)) + 4
        self.prompts = SampledCount(count_text_tokens)

    @classmethod
    def of(cls, line_of: LineOf) -> CompiledLine | None:
        """The compiled form of ``line_of``'s lines, or None when they cannot be cut at two holes."""
        if tokenizer_name() != ENCODING:
            return None  # the bytes/3 fallback counts the whole line: nothing to gain
        try:
            document = line_of(ID_SENTINEL, PROMPT_SENTINEL)
            data = orjson.dumps(document, default=str, option=orjson.OPT_PASSTHROUGH_DATETIME
                                | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_APPEND_NEWLINE)
        except Exception:
            return None
        if data != fast_json.dumps_line(document) or KEY_SENTINEL.encode() in data:
            return None
        prompt, custom_id = orjson.dumps(PROMPT_SENTINEL), orjson.dumps(ID_SENTINEL)
        if data.count(prompt) != 1 or data.count(custom_id) != 1:
            return None
        prompt_at, id_at = data.index(prompt), data.index(custom_id)
        first, second = (prompt, custom_id) if prompt_at < id_at else (custom_id, prompt)
        head, rest = data.split(first)
        middle, tail = rest.split(second)
        tokens = estimate_document_tokens(document) - count_text_tokens(PROMPT_SENTINEL)
        return cls((head, middle, tail), prompt_at < id_at, tokens)

    def line(self, custom_id: str, prompt: str) -> bytes | None:
        """The row's request line, or None when orjson refuses a value (a lone surrogate): the slow
        path then writes it as fast_json does."""
        try:
            cid, text = orjson.dumps(custom_id), orjson.dumps(prompt)
        except TypeError:
            return None
        return self.fill(cid, text)

    def line_and_prompt(self, custom_id: str, prompt: str) -> tuple[bytes, bytes] | None:
        """The row's request line and the prompt's JSON string in it (what :meth:`line` writes, and
        what a compiled fingerprint hashes), or None as for :meth:`line`."""
        try:
            cid, text = orjson.dumps(custom_id), orjson.dumps(prompt)
        except TypeError:
            return None
        head, middle, tail = self.parts  # fill's join, inline: this is the per-row call with the cache on
        return b"".join((head, text, middle, cid, tail) if self.prompt_first else (head, cid, middle, text, tail)), text

    def fill(self, cid: bytes, text: bytes) -> bytes:
        """The line with the custom_id's and the prompt's JSON strings in their holes."""
        head, middle, tail = self.parts
        if self.prompt_first:
            return b"".join((head, text, middle, cid, tail))
        return b"".join((head, cid, middle, text, tail))

    def tokens(self, prompt: str, size: int, exact: bool = False) -> int:
        """The token estimate of the line holding ``prompt`` (tokens.estimate_document_tokens), ``size``
        being the line's length in bytes: the prompt's count is exact on a sample of the run's rows (or
        with ``exact``), else a calibrated estimate that is never above the bytes it may take."""
        tokens = self.constant_tokens + self.prompts.tokens(prompt, size - self.fixed_bytes, exact)
        return tokens if tokens > 0 else 1
