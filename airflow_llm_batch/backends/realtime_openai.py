"""Real-time send for OpenAI and Azure OpenAI: a batch request line's body, posted to its own endpoint.

The line's ``url`` (``/v1/chat/completions`` for OpenAI, ``/chat/completions`` for Azure) is posted
relative to the client's base URL (which holds ``/v1`` or ``/openai``; Azure's client adds
``/deployments/{model}`` itself). The answer is decoded by the batch output decoder
(:func:`~airflow_llm_batch.backends.openai.decode_output_line`), so both paths read answers alike.
The SDK's own retries are off: the real-time runner owns retries and counts them.

Where the connection allows it (backends/raw_http.py), the body goes out on the backend's own HTTP
client instead (backends/raw_realtime_send.py): the same URL, headers and answer, at a fraction of the
CPU; the SDK path stays for custom auth and Azure AD tokens.
"""

from __future__ import annotations

import weakref
from typing import Any

import openai
from openai import AsyncAzureOpenAI, AsyncOpenAI

from airflow_llm_batch.backends.openai import decode_output_line
from airflow_llm_batch.backends.raw_realtime_send import RawSender
from airflow_llm_batch.backends.realtime_wire import CUSTOM_ID_HEADER, call_failed, connection_failed, error_field
from airflow_llm_batch.pipeline.types import RawResult

#: each client's copy without SDK retries, made once (``with_options`` copies the client: per request, that
#: was CPU spent on every call)
_NO_RETRIES: weakref.WeakKeyDictionary[AsyncOpenAI | AsyncAzureOpenAI, AsyncOpenAI | AsyncAzureOpenAI] = (
    weakref.WeakKeyDictionary())


def without_retries(client: AsyncOpenAI | AsyncAzureOpenAI) -> AsyncOpenAI | AsyncAzureOpenAI:
    """``client`` with ``max_retries=0`` (sharing its connection pool), built once per client."""
    copy = _NO_RETRIES.get(client)
    if copy is None:
        copy = _NO_RETRIES[client] = client.with_options(max_retries=0)
    return copy


async def send(client: AsyncOpenAI | AsyncAzureOpenAI, request_line: dict[str, Any],
               raw: RawSender | None = None) -> RawResult:
    """POST the line's body (on ``raw``'s session where there is one, else through the SDK client); the
    answer as a RawResult, or CallFailed (policy codes) without one."""
    custom_id = str(request_line["custom_id"])
    path = str(request_line["url"]).removeprefix("/v1")
    if raw is not None:
        answer = await raw.post(path, request_line["body"], custom_id)
        return decode_output_line({"custom_id": custom_id, "response": {"status_code": 200, "body": answer}})
    try:
        answer = await without_retries(client).post(
            path, cast_to=object, body=request_line["body"], options={"headers": {CUSTOM_ID_HEADER: custom_id}})
    except openai.APIStatusError as exc:
        code, message = error_field(exc.body, "code", "type"), error_field(exc.body, "message") or exc.message
        raise call_failed(exc.status_code, code, message, exc.response.headers) from exc
    except openai.APIConnectionError as exc:
        raise connection_failed(isinstance(exc, openai.APITimeoutError), str(exc)) from exc
    return decode_output_line({"custom_id": custom_id, "response": {"status_code": 200, "body": answer}})
