"""Integer query parameters of the emulated APIs (page sizes, limits), read one way everywhere.

Each provider keeps its own wording and range rule (OpenAI and Anthropic refuse a value out of
range, Google APIs clamp it); what is shared is the reading: absent gives the default, text that
is not an integer raises the provider's error.

Example::

    >>> int_param("7", 20, lambda: ValueError("limit must be an integer"))
    7
    >>> int_param(None, 20, lambda: ValueError("limit must be an integer"))
    20
"""

from __future__ import annotations

from collections.abc import Callable


def int_param(raw: str | None, default: int, invalid: Callable[[], Exception]) -> int:
    """``raw`` as an integer, ``default`` when None; raises ``invalid()`` for any other text."""
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise invalid() from exc


def clamped(value: int, low: int, high: int) -> int:
    """``value`` brought into ``low..high`` (how Google APIs treat a page size out of range)."""
    return max(low, min(value, high))
