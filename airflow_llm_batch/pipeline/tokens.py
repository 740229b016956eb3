"""Conservative token estimates, used to stay under a provider's enqueued-token budget.

tiktoken needs its encoding files from the internet at first use, which many Airflow workers cannot
reach; a byte-based bound needs nothing. One token is at least ~3 bytes of UTF-8 text for the
GPT/Claude/Gemini tokenizers on natural text, so ``bytes / 3`` over the whole request line
(which also counts JSON punctuation and parameters) over-estimates the prompt tokens: admission
planned on it never exceeds the real budget, at the price of some unused headroom.
"""

from __future__ import annotations

BYTES_PER_TOKEN = 3


def estimate_tokens(request_line: bytes) -> int:
    """An upper bound on the prompt tokens of one request line."""
    return -(-len(request_line) // BYTES_PER_TOKEN)
