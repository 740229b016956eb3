"""DAGs for the BigQuery / GCS tests (tests/gcp), run with dag.test(); everything variable comes in
through params: ``rows`` and ``destination`` URIs (bq://, gs://, file://), ``workspace``, and for the
flaky DAG ``fail_after_landing`` / ``dead_destination`` to simulate a crash or an unreachable sink
on the first try."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from airflow.sdk import DAG, task
from pydantic import BaseModel, Field

from airflow_llm_batch.operators import LLMBatchOperator
from airflow_llm_batch.sinks.bigquery import BigQuerySink

CONN = "llm_emulator"
PARAMS: dict[str, Any] = {"rows": "", "destination": "", "workspace": "", "fail_after_landing": False,
                          "dead_destination": "", "prefix": "m", "per_input": 10}


class Category(str, Enum):
    billing = "billing"
    bug = "bug"
    account = "account"
    other = "other"


class Routing(BaseModel):
    team: str = Field(max_length=40)
    escalate: bool


class TicketTriage(BaseModel):
    category: Category
    priority: int = Field(ge=1, le=5)
    urgent: bool
    confidence: float = Field(ge=0, le=1)
    summary: str = Field(max_length=120)
    tags: list[str] = Field(max_length=3)
    routing: Routing


class FlakyLandingOperator(LLMBatchOperator):
    """On try 1 only: land into ``dead_destination`` if given (the sink fails), or land and then crash
    if ``fail_after_landing``. Try 2 (the retry) lands into ``destination`` normally."""

    def execute(self, context: Any) -> Any:
        self.destination = context["params"]["destination"]
        return super().execute(context)

    def execute_complete(self, context: Any, event: Any = None) -> Any:
        params, first_try = context["params"], context["ti"].try_number == 1
        self.destination = params["dead_destination"] if first_try and params["dead_destination"] else \
            params["destination"]
        result = super().execute_complete(context, event)
        if first_try and params["fail_after_landing"]:
            raise RuntimeError("simulated worker crash after landing")
        return result


def triage_kwargs() -> dict[str, Any]:
    return {"conn_id": CONN, "model": "gpt-4o-mini", "key": "ticket_id", "system_prompt": "You triage support tickets.",
            "prompt": "Ticket {{ row.ticket_id }} ({{ row.tier }}): {{ row.subject }}\n{{ row.body }}",
            "response_format": TicketTriage, "destination": "{{ params.destination }}",
            "workspace": "{{ params.workspace }}", "max_rows_per_chunk": 2500, "poll_interval": 0.2}


def triage_task(operator: type[LLMBatchOperator], **kwargs: Any) -> LLMBatchOperator:
    return operator(task_id="triage", rows="{{ params.rows }}", **triage_kwargs(), **kwargs)


@task
def three_inputs(params: dict[str, Any]) -> list[list[dict[str, str]]]:
    """Three lists of ``per_input`` tickets with disjoint keys ``{prefix}-{input}-{i}``: one per mapped instance."""
    return [[{"ticket_id": f"{params['prefix']}-{part}-{i:04d}", "tier": "free", "subject": "Charged twice",
              "body": f"ticket {i} of input {part}"} for i in range(int(params["per_input"]))] for part in range(3)]


with DAG("llmb_gcp_flaky", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS, catchup=False):
    triage_task(FlakyLandingOperator, retries=1, retry_delay=0)

with DAG("llmb_gcp", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS, catchup=False):
    triage_task(LLMBatchOperator, retries=0)

with DAG("llmb_gcp_sink_object", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS, catchup=False):
    # a Sink object as destination: keyword options, and its URI is templated like a string destination
    triage_task(LLMBatchOperator, retries=0).destination = BigQuerySink("{{ params.destination }}", mode="append",
                                                                        parsed_as="record")

with DAG("llmb_gcp_mapped", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS, catchup=False):
    # one mapped instance per input, all landing into the same destination
    LLMBatchOperator.partial(task_id="triage", retries=0, **triage_kwargs()).expand(rows=three_inputs())
