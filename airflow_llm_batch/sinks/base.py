"""The sink contract and the URI -> sink dispatch."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.pipeline.types import ResultRow


@dataclass(frozen=True)
class LandingContext:
    """What a sink may need besides the rows: who produced them and their expected shape."""

    dag_id: str
    task_id: str
    run_id: str
    map_index: int = -1
    response_schema: dict[str, Any] | None = None
    provider: str = ""
    model: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Sink(Protocol):
    def check(self, context: LandingContext) -> None:
        """Fail early (InvalidInputError) if this sink cannot take the results; called before submit."""
        ...

    def write(self, rows: Iterable[ResultRow], context: LandingContext) -> dict[str, Any]:
        """Land every row; return a small description for the XCom summary (uri, counts...)."""
        ...


#: URI scheme -> "module:factory"; the factory takes (destination, **options) and returns a Sink
SINK_SCHEMES: dict[str, str] = {
    "bq": "airflow_llm_batch.sinks.bigquery:BigQuerySink",
}


def open_sink(destination: str | Sink, **options: Any) -> Sink:
    """A Sink for ``destination``: a Sink object as is, ``bq://`` -> BigQuery, else object storage."""
    if not isinstance(destination, str):
        if isinstance(destination, Sink):
            return destination
        raise InvalidInputError(f"destination must be a URI or a Sink, not {type(destination).__name__}")
    scheme = destination.split("://", 1)[0].lower() if "://" in destination else "file"
    if scheme in SINK_SCHEMES:
        module, _, name = SINK_SCHEMES[scheme].partition(":")
        factory = getattr(importlib.import_module(module), name)
        sink: Sink = factory(destination, **options)
        return sink
    from airflow_llm_batch.sinks.object_storage import ObjectStorageSink

    return ObjectStorageSink(destination, **options)
