"""operators/landing.land_results: a sink that takes records gets the results lines as read, with their
cost; any other sink gets ResultRows. Both land the same bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI

from airflow_llm_batch.backends.openai import OpenAIBatchBackend
from airflow_llm_batch.operators.landing import land_results, with_record_cost, with_row_cost
from airflow_llm_batch.pipeline import fast_json
from airflow_llm_batch.pipeline.prices import PriceTable
from airflow_llm_batch.pipeline.render import RequestSpec
from airflow_llm_batch.pipeline.run import BatchRun
from airflow_llm_batch.pipeline.run_folder import RunFolder
from airflow_llm_batch.pipeline.types import ResultRow, RowStatus, Usage
from airflow_llm_batch.sinks import LandingContext
from airflow_llm_batch.sinks.object_storage import ObjectStorageSink
from tests.run_helpers import drive

PRICE = PriceTable.default().price_for("openai", "gpt-4o-mini")
CONTEXT = LandingContext(dag_id="d", task_id="t", run_id="r", provider="openai", model="gpt-4o-mini")


class RowsOnly:
    """A sink with only the ``write(rows)`` of the Sink protocol (as BigQuery's): lands as JSONL."""

    def __init__(self, target: Path) -> None:
        self.inner = ObjectStorageSink(f"file://{target}")
        self.got: list[Any] = []

    def check(self, context: LandingContext) -> None:
        self.inner.check(context)

    def write(self, rows: Any, context: LandingContext) -> dict[str, Any]:
        def seen() -> Any:
            for row in rows:
                self.got.append(row)
                yield row

        return self.inner.write(seen(), context)


@pytest.mark.parametrize("price", [PRICE, None], ids=["priced", "unpriced"])
def test_record_cost_is_the_row_cost(price: Any) -> None:
    rows = [ResultRow("a", RowStatus.SUCCEEDED, "x", usage=Usage(1000, 200, 300)),
            ResultRow("b", RowStatus.SUCCEEDED, "y", usage=Usage(50, 7), answered_by="realtime",
                      extra={"cost_usd": "a carried column of that name"}),
            ResultRow("c", RowStatus.FAILED, None, error={"code": "e", "message": "m"}, answered_by="cache")]
    records = list(with_record_cost([r.to_dict() for r in rows], price))
    assert [fast_json.dumps_line(r) for r in records] == \
        [fast_json.dumps_line(r.to_dict()) for r in with_row_cost(rows, price)]
    if price is not None:
        assert records[1]["cost_usd"] > 0 and list(records[1])[-1] == "cost_usd"


async def test_a_finished_run_lands_the_same_bytes_either_way(emulator: Any, tmp_path: Path) -> None:
    rows = [{"id": f"land-{i:02d}", "text": f"land me {i}"} for i in range(30)]
    backend = OpenAIBatchBackend(AsyncOpenAI(base_url=emulator.openai_base_url, api_key="k"))
    run = BatchRun(tmp_path / "ws", backend, tags={"dag_id": "d", "task_id": "t", "run_id": "land-records"})
    manifest = run.prepare_or_load(lambda: rows, RequestSpec(model="gpt-4o-mini", prompt="{{ row.text }}", key="id"))
    await run.submit(manifest)
    await drive(run, manifest)
    await backend.aclose()

    folder = RunFolder(tmp_path / "ws")
    assert list(folder.iter_records(manifest)) == [r.to_dict() for r in folder.iter_results(manifest)]
    by_records = land_results(ObjectStorageSink(f"file://{tmp_path}/records.jsonl"), folder, manifest, PRICE,
                              CONTEXT)
    rows_only = RowsOnly(tmp_path / "rows.jsonl")
    by_rows = land_results(rows_only, folder, manifest, PRICE, CONTEXT)
    assert all(isinstance(r, ResultRow) for r in rows_only.got) and len(rows_only.got) == 30
    assert by_records["succeeded"] == by_rows["succeeded"] == 30
    landed = (tmp_path / "records.jsonl").read_bytes()
    assert landed == (tmp_path / "rows.jsonl").read_bytes()
    assert sorted(fast_json.loads(line)["key"] for line in landed.splitlines()) == [r["id"] for r in rows]
    assert all(fast_json.loads(line)["cost_usd"] > 0 for line in landed.splitlines())
