"""Model prices kept as data (``prices.json``), looked up by provider and model.

Prices are USD per 1M tokens, real-time and batch. The packaged table carries the date the prices
were taken; a model that is not in it has no price (``None``), which callers report as "unknown"
rather than guess. Users price such models, or correct stale ones, with overrides.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

from airflow_llm_batch.exceptions import InvalidInputError

#: the six prices of one model, in the order of :class:`ModelPrice`'s fields
PRICE_FIELDS = ("input", "cached_input", "output", "batch_input", "batch_cached_input", "batch_output")
#: batch price as a share of the real-time price when an override gives only real-time prices
DEFAULT_BATCH_FACTOR = 0.5
#: keys a model entry may carry besides prices (ignored for pricing)
_METADATA_KEYS = frozenset({"note", "source"})
#: what may follow a known model name for the longer name to be the same model: a dated or numbered
#: snapshot such as "-2024-07-18", "-20250929", "@20250929" (Vertex) or "-001"
_SNAPSHOT_SUFFIX = re.compile(r"[-@](?:\d{4}-\d{2}-\d{2}|\d{8}|\d{3,4})")
#: providers whose models cost nothing unless priced (self-hosted OpenAI-compatible servers: vLLM,
#: Ollama...); a hosted one (DeepSeek, Together, Groq) is priced with the prices file or ``prices=``
FREE_UNLESS_PRICED = frozenset({"openai_compatible"})


@dataclass(frozen=True)
class ModelPrice:
    """The prices of one model, USD per 1M tokens.

    ``cached_input`` / ``batch_cached_input`` apply to input tokens served from the provider's prompt
    cache (a subset of the input tokens).

    Example::

        >>> price = ModelPrice(input=0.15, cached_input=0.075, output=0.6,
        ...                    batch_input=0.075, batch_cached_input=0.075, batch_output=0.3)
        >>> price.batch_output
        0.3
    """

    input: float
    cached_input: float
    output: float
    batch_input: float
    batch_cached_input: float
    batch_output: float

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, where: str = "price") -> ModelPrice:
        """Build a price from a mapping of the six fields, filling what may be left out.

        ``input`` and ``output`` are required. ``cached_input`` defaults to ``input`` (no cache
        discount assumed). Missing batch prices default to 50% of the real-time ones.
        Raises :class:`InvalidInputError` naming ``where`` for unknown keys and bad values.
        """
        if not isinstance(data, Mapping):
            raise InvalidInputError(f"{where}: expected a mapping of prices, got {type(data).__name__}")
        unknown = set(data) - set(PRICE_FIELDS) - _METADATA_KEYS
        if unknown:
            raise InvalidInputError(f"{where}: unknown price field(s) {sorted(unknown)}; "
                                    f"use {list(PRICE_FIELDS)} (USD per 1M tokens)")
        missing = [name for name in ("input", "output") if name not in data]
        if missing:
            raise InvalidInputError(f"{where}: {' and '.join(missing)} price missing (USD per 1M tokens)")
        values = {name: _usd_per_mtok(data[name], f"{where}.{name}") for name in PRICE_FIELDS if name in data}
        values.setdefault("cached_input", values["input"])
        for name in ("input", "cached_input", "output"):
            values.setdefault(f"batch_{name}", values[name] * DEFAULT_BATCH_FACTOR)
        return cls(**values)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class PriceOrigin:
    """Where one model's price comes from: the date it was taken and its source (``bundled``, or the
    price file it was read from)."""

    taken_on: str
    source: str


#: the price of a model at a provider in :data:`FREE_UNLESS_PRICED` that no table entry prices
ZERO_PRICE = ModelPrice(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
FREE_ORIGIN = PriceOrigin("", "self-hosted: zero unless priced")


class PriceTable:
    """Prices per provider and model, with the date they were taken.

    Example::

        >>> table = PriceTable.default().with_overrides(
        ...     {"openai": {"my-ft-model": {"input": 0.3, "output": 1.2}}})
        >>> table.price_for("openai", "my-ft-model").batch_input
        0.15
        >>> table.price_for("openai", "gpt-4o-mini-2024-07-18") == table.price_for("openai", "gpt-4o-mini")
        True
        >>> table.price_for("openai", "no-such-model") is None
        True
    """

    def __init__(self, providers: Mapping[str, Mapping[str, ModelPrice]], *, taken_on: str = "",
                 source_note: str = "", source: str = "bundled",
                 origins: Mapping[tuple[str, str], PriceOrigin] | None = None) -> None:
        self._providers: dict[str, dict[str, ModelPrice]] = {
            _norm(provider): {_norm(model): price for model, price in models.items()}
            for provider, models in providers.items()
        }
        self._taken_on = taken_on
        self._source_note = source_note
        own = PriceOrigin(taken_on, source)
        self._origins = {(p, m): (origins or {}).get((p, m), own)
                         for p, models in self._providers.items() for m in models}

    @property
    def taken_on(self) -> str:
        """The date (YYYY-MM-DD) the packaged prices were taken from the providers' pages."""
        return self._taken_on

    @property
    def source_note(self) -> str:
        return self._source_note

    @classmethod
    def default(cls) -> PriceTable:
        """The table shipped with the package (``airflow_llm_batch/pipeline/prices.json``)."""
        return _default_table()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "bundled") -> PriceTable:
        """Read ``{"taken_on": ..., "source_note": ..., "providers": {provider: {model: {prices}}}}``.

        Each model gives ``input`` and ``output`` at least; see :meth:`ModelPrice.from_mapping` for
        the defaults of the other fields. Other top-level keys (such as ``sources``) are ignored.
        """
        providers = data.get("providers")
        if not isinstance(providers, Mapping):
            raise InvalidInputError('price table: "providers" must map provider -> model -> prices')
        return cls(_parse_providers(providers, source if source != "bundled" else "prices"),
                   taken_on=str(data.get("taken_on", "")), source_note=str(data.get("source_note", "")),
                   source=source)

    def with_overrides(self, overrides: dict[str, dict[str, dict[str, float]]] | None) -> PriceTable:
        """A copy of this table with some models priced by the caller.

        ``overrides`` is ``{provider: {model: {field: USD per 1M tokens}}}``. Each overridden model
        is replaced as a whole: ``input`` and ``output`` are required, ``cached_input`` defaults to
        ``input``, and when only real-time prices are given the batch prices default to 50% of them
        (the discount OpenAI, Anthropic and Gemini give on their batch APIs). Models that are not
        overridden keep the table's prices. ``taken_on`` is kept; overridden entries are the
        caller's own prices.
        """
        if not overrides:
            return self
        if not isinstance(overrides, Mapping):
            raise InvalidInputError("prices must map provider -> model -> {field: USD per 1M tokens}")
        merged = {provider: dict(models) for provider, models in self._providers.items()}
        origins = dict(self._origins)
        for provider, models in _parse_providers(overrides, "prices").items():
            merged.setdefault(provider, {}).update(models)
            origins.update({(provider, m): PriceOrigin(self.taken_on, "prices=") for m in models})
        return PriceTable(merged, taken_on=self.taken_on, source_note=self.source_note, origins=origins)

    def price_for(self, provider: str, model: str) -> ModelPrice | None:
        """The price of ``model`` at ``provider``, or None when the table does not know it.

        An exact name wins. Otherwise the longest known name that the given one starts with is used,
        provided what follows it is a snapshot suffix (a date such as ``-2024-07-18``, ``-20250929``
        or ``@20250929``, or a version number such as ``-001``): ``gpt-4o-mini-2024-07-18`` is priced
        as ``gpt-4o-mini`` and ``claude-sonnet-4-5-20250929`` as ``claude-sonnet-4-5``, but
        ``claude-opus-4-1`` is never priced as ``claude-opus-4`` nor ``gpt-5.4`` as ``gpt-5``.
        A model of a provider in :data:`FREE_UNLESS_PRICED` that nothing prices costs zero.
        A path prefix (``models/gemini-2.5-flash``, ``publishers/google/models/...``) is ignored.
        """
        known = self._resolve(provider, model)
        if known is None:
            return ZERO_PRICE if _norm(provider) in FREE_UNLESS_PRICED else None
        return self._providers[_norm(provider)][known]

    def origin_of(self, provider: str, model: str) -> PriceOrigin | None:
        """The date and source of the price :meth:`price_for` gives, or None when it gives none."""
        known = self._resolve(provider, model)
        if known is None:
            return FREE_ORIGIN if _norm(provider) in FREE_UNLESS_PRICED else None
        return self._origins[(_norm(provider), known)]

    def merged_with(self, other: PriceTable) -> PriceTable:
        """This table with every model ``other`` prices replaced by ``other``'s entry (and origin).

        Example::

            >>> newer = PriceTable.from_dict({"taken_on": "2027-01-05", "providers": {
            ...     "openai": {"gpt-4o-mini": {"input": 0.1, "output": 0.4}}}}, source="prices.json")
            >>> merged = PriceTable.default().merged_with(newer)
            >>> merged.price_for("openai", "gpt-4o-mini").input, merged.origin_of("openai", "gpt-4o-mini")
            (0.1, PriceOrigin(taken_on='2027-01-05', source='prices.json'))
        """
        providers = {p: dict(models) for p, models in self._providers.items()}
        origins = dict(self._origins)
        for provider, models in other._providers.items():
            providers.setdefault(provider, {}).update(models)
            origins.update({(provider, m): other._origins[(provider, m)] for m in models})
        return PriceTable(providers, taken_on=self.taken_on, source_note=self.source_note, origins=origins)

    def _resolve(self, provider: str, model: str) -> str | None:
        models = self._providers.get(_norm(provider))
        if not models:
            return None
        name = _norm(model).rsplit("/", 1)[-1]
        if name in models:
            return name
        for known in sorted((m for m in models if name.startswith(m)), key=len, reverse=True):
            if _SNAPSHOT_SUFFIX.fullmatch(name[len(known):]):
                return known
        return None

    @property
    def providers(self) -> list[str]:
        return sorted(self._providers)

    def models(self, provider: str) -> list[str]:
        """The model names priced for ``provider`` (empty when the provider is unknown)."""
        return sorted(self._providers.get(_norm(provider), {}))

    def to_dict(self) -> dict[str, Any]:
        return {"taken_on": self.taken_on, "source_note": self.source_note,
                "providers": {p: {m: price.to_dict() for m, price in models.items()}
                              for p, models in self._providers.items()}}


@functools.lru_cache(maxsize=1)
def _default_table() -> PriceTable:
    text = resources.files("airflow_llm_batch.pipeline").joinpath("prices.json").read_text(encoding="utf-8")
    return PriceTable.from_dict(json.loads(text))


def _parse_providers(providers: Mapping[str, Any], where: str) -> dict[str, dict[str, ModelPrice]]:
    parsed: dict[str, dict[str, ModelPrice]] = {}
    for provider, models in providers.items():
        if not isinstance(models, Mapping):
            raise InvalidInputError(f"{where}[{provider!r}]: expected a mapping of model -> prices")
        parsed[_norm(provider)] = {
            _norm(model): ModelPrice.from_mapping(fields, where=f"{where}[{provider!r}][{model!r}]")
            for model, fields in models.items()
        }
    return parsed


def _usd_per_mtok(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInputError(f"{where}: expected a number (USD per 1M tokens), got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise InvalidInputError(f"{where}: expected a finite price >= 0 (USD per 1M tokens), got {value!r}")
    return number


def _norm(name: str) -> str:
    return str(name).strip().lower()
