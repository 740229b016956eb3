"""Invoice extraction with Claude: turn each day's invoice texts into validated, structured records.

Each input row is one invoice (JSONL: ``{"invoice_id": ..., "text": ...}``, e.g. OCR or e-mail body).
Claude answers through a forced tool whose input schema is the ``Invoice`` model below, so every answer
is JSON that validates against it; rows that do not are reported as failed with the reason, never lost.
The long extraction rules are sent as a cached system prompt (``cache_system_prompt``): after the
first request of a batch they are billed at the cache-read price.

Runs unchanged on the bundled emulator (``airflow-llm-batch emulator``, then point the connection's
host at it) or on the real Message Batches API: create an ``anthropic_default`` connection of type
``anthropic`` with the API key as password (the official Anthropic provider's connection works as is),
and give the ``invoices_uri`` / ``results_uri`` params your storage URIs (file://, gs://, s3://...) when
triggering, or change the daily defaults below. (A ``{{ ds }}`` inside a param value is not rendered:
Airflow renders a template once, so the defaults are composed in the templates instead.)
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import Enum

from airflow.sdk import DAG
from pydantic import BaseModel, Field

from airflow_llm_batch.operators import LLMBatchOperator


class Currency(str, Enum):
    EUR = "EUR"
    USD = "USD"
    GBP = "GBP"
    CHF = "CHF"
    OTHER = "OTHER"


class LineItem(BaseModel):
    description: str = Field(max_length=200)
    quantity: float = Field(ge=0)
    unit_price: float = Field(ge=0)


class Invoice(BaseModel):
    """The fields accounts payable needs from one invoice."""

    vendor_name: str = Field(max_length=200)
    vendor_vat_id: str | None = Field(default=None, description="VAT or tax id, as printed; null if absent.")
    invoice_number: str = Field(max_length=64)
    invoice_date: date
    due_date: date | None = None
    currency: Currency
    total_amount: float = Field(ge=0, description="Grand total including tax.")
    tax_amount: float | None = Field(default=None, ge=0)
    line_items: list[LineItem] = Field(default_factory=list, max_length=100)


RULES = """You extract data from supplier invoices for an accounts-payable team.
Rules:
- Copy names, numbers and ids exactly as printed; never invent a value. Use null when a field is absent.
- Dates as YYYY-MM-DD. When a date is ambiguous (03/04/2026), prefer the vendor's country convention.
- Amounts as plain numbers without thousands separators or currency symbols; the total includes tax.
- Currency: the ISO code printed or implied by the symbol (EUR for €, GBP for £); OTHER if none fits.
- List at most 100 line items, in the printed order; skip subtotal, tax and shipping summary lines."""


with DAG(
    dag_id="invoice_extraction_anthropic",
    schedule="@daily",
    start_date=datetime(2026, 11, 1),
    catchup=False,
    params={
        # empty: the day's default files below; or any URI, given when triggering a run
        "invoices_uri": "",
        "results_uri": "",
        "model": "claude-haiku-4-5",
    },
    tags=["llm-batch", "example", "anthropic"],
):
    LLMBatchOperator(
        task_id="extract_invoices",
        provider="anthropic",
        conn_id="anthropic_default",
        model="{{ params.model }}",
        rows="{{ params.invoices_uri or 'file:///tmp/llm-batch-demo/invoices/' ~ ds ~ '.jsonl' }}",
        key="invoice_id",
        system_prompt=RULES,
        prompt="Invoice {{ row.invoice_id }}:\n\n{{ row.text }}",
        response_format=Invoice,
        request_params={"max_tokens": 2048, "temperature": 0, "cache_system_prompt": True},
        destination="{{ params.results_uri or 'file:///tmp/llm-batch-demo/invoices-extracted/' ~ ds ~ '.jsonl' }}",
        poll_interval=120,
        timeout=timedelta(hours=25),
        min_success_rate=0.98,
        retries=2,
        retry_delay=timedelta(minutes=5),
    )
