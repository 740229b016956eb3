"""The price table a task uses: the bundled one, merged under ``[llm_batch] prices_file``, then ``prices=``.

``prices_file`` is a JSON file in the bundled table's format (``{"taken_on": "YYYY-MM-DD",
"providers": {provider: {model: {"input": ..., "output": ...}}}}``), local or on object storage
(``s3://``, ``gs://``... through ObjectStoragePath). Every model it prices replaces the bundled entry
and carries the file's date and path; models it does not name keep the bundled price. A price older
than :data:`STALE_AFTER_DAYS` days by its date is warned about once per task run (process).
"""

from __future__ import annotations

import datetime as dt
import json
import logging

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.pipeline.prices import ModelPrice, PriceOrigin, PriceTable

log = logging.getLogger(__name__)

#: a price taken longer ago than this (by its date) is warned about
STALE_AFTER_DAYS = 90
_warned: set[PriceOrigin] = set()


def prices_file_setting() -> str:
    """``[llm_batch] prices_file`` ("" when unset)."""
    from airflow.configuration import conf

    return str(conf.get("llm_batch", "prices_file", fallback="") or "").strip()


def load_price_file(location: str) -> PriceTable:
    """Read a price file (local path or object storage URI); errors name the file and what to fix."""
    from airflow_llm_batch.sources.rows import to_path

    try:
        text = to_path(location).read_text(encoding="utf-8")
    except Exception as exc:  # not found, no permission, unknown scheme: all mean "cannot read it"
        raise InvalidInputError(f"[llm_batch] prices_file={location!r} cannot be read ({type(exc).__name__}: "
                                f"{exc}); fix the path or unset the option to use the bundled prices") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidInputError(f"[llm_batch] prices_file={location!r} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise InvalidInputError(f"[llm_batch] prices_file={location!r}: expected a JSON object with "
                                f'"taken_on" and "providers"')
    return PriceTable.from_dict(data, source=location)


def effective_table(prices_file: str | None = None) -> PriceTable:
    """The bundled table with ``prices_file`` (default: the ``[llm_batch] prices_file`` setting) over it."""
    location = prices_file_setting() if prices_file is None else prices_file
    table = PriceTable.default()
    return table.merged_with(load_price_file(location)) if location else table


def effective_price(provider: str, model: str,
                    overrides: dict[str, dict[str, dict[str, float]]] | None = None) -> tuple[ModelPrice | None, str]:
    """The price of ``model`` and the date it was taken; warns once when that date is stale."""
    table = effective_table().with_overrides(overrides)
    origin = table.origin_of(provider, model)
    if origin is None:
        return None, table.taken_on
    warn_if_stale(origin, provider=provider, model=model)
    return table.price_for(provider, model), origin.taken_on


def age_in_days(taken_on: str, today: dt.date | None = None) -> int | None:
    """Days since ``taken_on`` (YYYY-MM-DD), or None when it is not a date."""
    try:
        taken = dt.date.fromisoformat(taken_on)
    except ValueError:
        return None
    return ((today or dt.date.today()) - taken).days


def warn_if_stale(origin: PriceOrigin, *, provider: str, model: str, today: dt.date | None = None) -> bool:
    """Log one warning per origin (date and source) per process when it is over the age limit."""
    age = age_in_days(origin.taken_on, today)
    if age is None or age <= STALE_AFTER_DAYS or origin in _warned:
        return False
    _warned.add(origin)
    log.warning("The price of %s/%s was taken on %s (%d days ago, source %s): it may be stale. Put current "
                "prices in a file and point [llm_batch] prices_file at it; `airflow-llm-batch prices` shows "
                "the table in use.", provider, model, origin.taken_on, age, origin.source)
    return True
