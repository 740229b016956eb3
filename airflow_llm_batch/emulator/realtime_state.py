"""Admission, injected failures and counters of the emulator's real-time endpoints.

A real-time request is one HTTP call answered at once (``/v1/chat/completions``, ``/v1/messages``,
``:generateContent``...). Before it is answered the emulator may refuse it:

* busy: more than ``realtime_max_concurrency`` requests in flight -> 429 with ``Retry-After``;
* injected: a deterministic ``realtime_429_rate`` / ``realtime_5xx_rate`` share of request BODIES is
  refused on its first send only (drawn from the body's hash), so a resend of the same body succeeds;
  ``realtime_429_count`` refuses the first N bodies the same way (an exact number of refusals). On the
  Gemini and Vertex routes ``realtime_retry_delay_seconds`` turns each 429 into Google's quota error, its
  delay in ``google.rpc.RetryInfo`` (realtime_api.py).

Counters prove "nothing paid twice": ``answered_by_body`` counts the 200 answers (the ones a provider
bills) per body hash, ``answered_by_custom_id`` per ``x-llm-batch-custom-id`` header when a client sends
one; ``bodies_paid_twice`` is the number of bodies answered more than once. ``waits_after_refusal`` gives,
per refused body, the seconds between its refusal and its next send (how long the client waited: at least the
advised delay when the client honours it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from airflow_llm_batch.backends.realtime_wire import CUSTOM_ID_HEADER as CUSTOM_ID_HEADER

from . import model

if TYPE_CHECKING:
    from .config import EmulatorConfig

_HASH_RANGE = 1 << 64
#: the longest RetryInfo delay the emulator advises (a test waits it out)
MAX_RETRY_DELAY_SECONDS = 3600.0
#: where orjson's sorted compact JSON may differ from ``json.dumps``: floats (``1e-05`` is written
#: ``0.00001``) and NaN/Infinity (written ``null``); strings, ints, bools and key order are identical
_MAY_DIFFER = re.compile(rb"[0-9][.eE]|null")


def body_hash(body: Any) -> str:
    """A hash of a JSON body that ignores key order and spacing (SDKs serialize differently).

    The hash of ``json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``,
    computed from orjson's encoding when that is byte for byte the same (no float, no null)."""
    try:
        canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an int beyond 64 bits, a lone surrogate
        canonical = b"null"
    if _MAY_DIFFER.search(canonical):
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(canonical).hexdigest()[:32]


def check_realtime_config(config: EmulatorConfig) -> None:
    """ValueError naming the real-time setting that is out of range."""
    if config.realtime_latency_seconds < 0:
        raise ValueError("realtime_latency_seconds must be >= 0")
    if config.realtime_max_concurrency is not None and config.realtime_max_concurrency < 1:
        raise ValueError("realtime_max_concurrency must be >= 1 when set")
    for name in ("realtime_429_rate", "realtime_5xx_rate"):
        if not 0 <= getattr(config, name) <= 1:
            raise ValueError(f"{name} must be in 0..1")
    if config.realtime_429_rate + config.realtime_5xx_rate > 1:
        raise ValueError("realtime_429_rate + realtime_5xx_rate must be <= 1")
    if isinstance(config.realtime_429_count, bool) or not isinstance(config.realtime_429_count, int) \
            or config.realtime_429_count < 0:
        raise ValueError("realtime_429_count must be an integer >= 0")
    delay = config.realtime_retry_delay_seconds
    if delay is not None and not 0 <= delay <= MAX_RETRY_DELAY_SECONDS:
        raise ValueError(f"realtime_retry_delay_seconds must be in 0..{MAX_RETRY_DELAY_SECONDS:g} when set")


@dataclass
class RealtimeCounters:
    """What the real-time endpoints were asked and what they answered (see the module docstring)."""

    requests: int = 0
    answered: int = 0
    refused_busy: int = 0
    injected_429: int = 0
    injected_5xx: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    #: calls of the free count-tokens endpoints (count_tokens_api.py)
    count_tokens_calls: int = 0
    requests_by_provider: Counter[str] = field(default_factory=Counter)
    answered_by_body: Counter[str] = field(default_factory=Counter)
    answered_by_custom_id: Counter[str] = field(default_factory=Counter)
    #: body hash -> when (monotonic seconds) its first send was refused
    refused_at: dict[str, float] = field(default_factory=dict)
    #: body hash -> seconds between its refusal and its next send: how long the client waited
    waits_after_refusal: dict[str, float] = field(default_factory=dict)
    #: refusals made for ``realtime_429_count`` so far
    counted_429: int = 0

    def clear(self) -> None:
        """Zero the counters in place; requests in flight stay counted (they are still running)."""
        fresh = RealtimeCounters(in_flight=self.in_flight)
        for name in (f.name for f in dataclasses.fields(self)):
            setattr(self, name, getattr(fresh, name))

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests, "answered": self.answered, "refused_busy": self.refused_busy,
            "injected_429": self.injected_429, "injected_5xx": self.injected_5xx,
            "in_flight": self.in_flight, "peak_in_flight": self.peak_in_flight,
            "count_tokens_calls": self.count_tokens_calls,
            "requests_by_provider": dict(self.requests_by_provider),
            "answered_by_body": dict(self.answered_by_body),
            "answered_by_custom_id": dict(self.answered_by_custom_id),
            "bodies_paid_twice": sum(1 for count in self.answered_by_body.values() if count > 1),
            "waits_after_refusal": dict(self.waits_after_refusal),
        }


class RealtimeGate:
    """Decides, for one request, whether it is refused (busy or injected) and counts what happens."""

    def __init__(self, config: EmulatorConfig, counters: RealtimeCounters,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config, self.counters, self._clock = config, counters, clock

    def refusal(self, provider: str, digest: str) -> int | None:
        """The status refusing this request before any work (429/500), or None to answer it."""
        counters = self.counters
        counters.requests += 1
        counters.requests_by_provider[provider] += 1
        limit = self.config.realtime_max_concurrency
        if limit is not None and counters.in_flight >= limit:
            counters.refused_busy += 1
            return 429
        status = self._injected(digest)
        if status is not None:
            counters.refused_at[digest] = self._clock()
            if status == 429:
                counters.injected_429 += 1
            else:
                counters.injected_5xx += 1
        return status

    def _injected(self, digest: str) -> int | None:
        config, counters = self.config, self.counters
        if not (config.realtime_429_rate or config.realtime_5xx_rate or config.realtime_429_count):
            return None  # nothing to inject: skip hashing
        refused_at = counters.refused_at.get(digest)
        if refused_at is not None:  # refused once already: the resend goes through
            counters.waits_after_refusal.setdefault(digest, self._clock() - refused_at)
            return None
        if counters.counted_429 < config.realtime_429_count:
            counters.counted_429 += 1
            return 429
        draw = model.stable_hash("realtime", digest) / _HASH_RANGE
        if draw < self.config.realtime_429_rate:
            return 429
        if draw < self.config.realtime_429_rate + self.config.realtime_5xx_rate:
            return 500
        return None

    def enter(self) -> None:
        counters = self.counters
        counters.in_flight += 1
        counters.peak_in_flight = max(counters.peak_in_flight, counters.in_flight)

    def leave(self, digest: str, custom_id: str | None, paid: bool) -> None:
        counters = self.counters
        counters.in_flight -= 1
        if paid:
            counters.answered += 1
            counters.answered_by_body[digest] += 1
            if custom_id:
                counters.answered_by_custom_id[custom_id] += 1
