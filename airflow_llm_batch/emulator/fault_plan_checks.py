"""Checks of the :class:`~.faults.FaultPlan` fields: each says which field is wrong and why.

Example::

    >>> share("row_error_rate", 1)
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

MAX_HANG_SECONDS = 300.0
"""A hung answer never waits longer than this (the emulator must stay stoppable)."""
NOT_CREATED_STATUSES = frozenset({503, 529})
"""Statuses clients may read as "nothing was created" (Anthropic: 503 is sent as 529 overloaded)."""


def number(name: str, value: Any, *, integer: bool = False) -> Any:
    """``value`` checked to be a number (a float from then on), or with ``integer`` an integer."""
    if isinstance(value, bool) or not isinstance(value, (int, float) if not integer else int):
        raise TypeError(f"{name} must be {'an integer' if integer else 'a number'}, got {value!r}")
    return value if integer else float(value)


SHARE_FIELDS = ("row_error_rate", "expire_done_fraction", "http_error_rate", "malformed_output_rate")
"""Plan fields that are a share of something: numbers in 0..1."""
COUNT_FIELDS = ("row_error_times", "expire_batches", "lost_creates", "hung_creates")
"""Plan fields that count something: integers >= 0."""


def share(name: str, value: Any) -> float:
    """A share of something: a number in 0..1."""
    fraction: float = number(name, value)
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1")
    return fraction


def count(name: str, value: Any) -> None:
    """A count: an integer >= 0."""
    if number(name, value, integer=True) < 0:
        raise ValueError(f"{name} must be >= 0")


def slow_factor(value: Any) -> float:
    """A pace divisor: a finite number > 0."""
    slow: float = number("slow_factor", value)
    if not math.isfinite(slow) or slow <= 0:
        raise ValueError("slow_factor must be > 0")
    return slow


def hang_seconds(value: Any) -> float:
    """How long a hung answer waits: > 0 and at most ``MAX_HANG_SECONDS``."""
    hang: float = number("hang_seconds", value)
    if not 0 < hang <= MAX_HANG_SECONDS:
        raise ValueError(f"hang_seconds must be > 0 and <= {MAX_HANG_SECONDS:g}")
    return hang


def check_lost_create_status(value: Any) -> None:
    """A lost create's status: a 5xx that does not promise "nothing created", or 0."""
    lost = number("lost_create_status", value, integer=True)
    if lost != 0 and not (500 <= lost <= 599 and lost not in NOT_CREATED_STATUSES):
        raise ValueError("lost_create_status must be a 5xx status other than 503 and 529 (they promise "
                         "nothing was created), or 0 to drop the connection")


def error_statuses(value: Any) -> tuple[int, ...]:
    """The transient error statuses: a non-empty sequence of 4xx/5xx."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError("http_error_statuses must be a sequence of HTTP statuses")
    statuses = tuple(number("http_error_statuses", s, integer=True) for s in value)
    if not statuses:
        raise ValueError("http_error_statuses must not be empty")
    if any(not 400 <= s <= 599 for s in statuses):
        raise ValueError("http_error_statuses must be HTTP error statuses (400..599)")
    return statuses
