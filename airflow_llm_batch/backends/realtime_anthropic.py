"""Real-time send for Anthropic: a batch request line's ``params``, posted to ``/v1/messages``.

The answer is a ``Message``, decoded by the batch results decoder
(:func:`~airflow_llm_batch.backends.anthropic_results.decode_message`). The SDK's own retries are
off: the real-time runner owns retries and counts them. Where the connection allows it
(backends/raw_http.py), the params go out on the backend's own HTTP client instead
(backends/raw_realtime_send.py), and the answer becomes a ``Message`` as the SDK builds one.
"""

from __future__ import annotations

from typing import Any

import anthropic
from anthropic import AsyncAnthropic
from anthropic.types import Message

from airflow_llm_batch.backends.anthropic_results import decode_message
from airflow_llm_batch.backends.raw_realtime_send import RawSender
from airflow_llm_batch.backends.realtime_wire import CUSTOM_ID_HEADER, call_failed, connection_failed, error_field
from airflow_llm_batch.pipeline.types import RawResult


async def send(client: AsyncAnthropic, request_line: dict[str, Any], raw: RawSender | None = None) -> RawResult:
    """POST the line's params (on ``raw``'s session where there is one, else through the SDK client); the
    answer as a RawResult, or CallFailed (policy codes) without one."""
    custom_id = str(request_line["custom_id"])
    if raw is not None:
        answer = await raw.post("/v1/messages", request_line["params"], custom_id)
        return decode_message(custom_id, Message.construct(**answer))  # as the SDK builds it (no validation)
    try:
        message = await client.with_options(max_retries=0).post(
            "/v1/messages", cast_to=Message, body=request_line["params"],
            options={"headers": {CUSTOM_ID_HEADER: custom_id}})
    except anthropic.APIStatusError as exc:
        reason = error_field(exc.body, "message") or exc.message
        raise call_failed(exc.status_code, error_field(exc.body, "type"), reason, exc.response.headers) from exc
    except anthropic.APIConnectionError as exc:
        raise connection_failed(isinstance(exc, anthropic.APITimeoutError), str(exc)) from exc
    return decode_message(custom_id, message)
