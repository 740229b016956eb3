"""Where results land. ``open_sink(destination)`` picks a sink from a URI (or takes a Sink object).

Every sink gets the same call: ``check()`` before anything is submitted (bad scheme, conflicting
table schema, unwritable place -> InvalidInputError while no money has moved), then ``write(rows,
target)`` once every row is final. Writes must be idempotent per task run: a retry after a partial
failure lands the same rows again without duplicates.
"""

from __future__ import annotations

from airflow_llm_batch.sinks.base import LandingContext, Sink, open_sink

__all__ = ["LandingContext", "Sink", "open_sink"]
