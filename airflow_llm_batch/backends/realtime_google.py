"""Real-time send for Gemini and Vertex AI: a batch request line's ``GenerateContentRequest``, sent
through google-genai's ``client.aio.models.generate_content`` (the ordinary ``:generateContent``).

The line becomes the SDK's arguments with the same conversion the inline batch path uses
(:func:`~airflow_llm_batch.backends.gemini_request.inlined_request`); the answer is decoded by the
batch decoder (:func:`~airflow_llm_batch.backends.generate_content.decode_response`). The SDK's own
retries are off: the real-time runner owns retries and counts them.

Where the connection allows it (a Gemini Developer API key: backends/raw_http.py ``gemini_target``), the
line's ``GenerateContentRequest`` goes out as it is on the backend's own HTTP client instead
(backends/raw_realtime_send.py): ``POST {base}/{model}:generateContent``, the same answer decoder, at a
fraction of the SDK's CPU. Vertex AI stays on the SDK: its OAuth token is refreshed while the client lives,
which a raw target's fixed headers cannot follow.

Errors of both paths map through one function (:func:`google_failed`): Google's canonical ``status``
(``RESOURCE_EXHAUSTED``, ``UNAUTHENTICATED``, ``PERMISSION_DENIED``...) -> the policy's code by
:func:`~airflow_llm_batch.backends.generate_content.status_error`, so an auth refusal keeps its systemic
code and trips the runner's breaker whichever path sent the call; a 429 or 5xx waits as the server asks
(``Retry-After``, else the ``google.rpc.RetryInfo`` delay among the error's details).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
import httpx
from google import genai
from google.genai import errors, types

from airflow_llm_batch.backends.gemini_request import inlined_request, model_path
from airflow_llm_batch.backends.generate_content import decode_response, status_error
from airflow_llm_batch.backends.raw_realtime_send import RawSender, error_document
from airflow_llm_batch.backends.realtime_wire import CUSTOM_ID_HEADER, call_failed, connection_failed
from airflow_llm_batch.pipeline.types import RawResult
from airflow_llm_batch.realtime.runner import CallFailed

_TIMEOUTS = (httpx.TimeoutException, asyncio.TimeoutError)
_LOST = (httpx.TransportError, aiohttp.ClientError)
_NO_AFC = types.AutomaticFunctionCallingConfig(disable=True)


def sdk_arguments(request_line: dict[str, Any]) -> tuple[str, Any, types.GenerateContentConfig]:
    """(model, contents, config) of a Gemini line ``{"key", "request"}`` or a Vertex line ``{"key", "model",
    "request"}``; the config carries the row's header, no SDK retries and no automatic function calling (one
    call per row, as the raw path: the SDK's loop would log an INFO line and copy the config per call)."""
    inlined = inlined_request(request_line)
    model = str(request_line.get("model") or inlined["model"])
    options = types.HttpOptions(headers={CUSTOM_ID_HEADER: str(request_line["key"])},
                                retry_options=types.HttpRetryOptions(attempts=1))
    config = types.GenerateContentConfig.model_validate({**inlined.get("config", {}), "http_options": options,
                                                         "automatic_function_calling": _NO_AFC})
    return model, inlined["contents"], config


async def send(client: genai.Client, request_line: dict[str, Any], raw: RawSender | None = None) -> RawResult:
    """Send the line's request (on ``raw``'s session where there is one, else through the SDK client); the
    answer as a RawResult, or CallFailed (policy codes) without one."""
    if raw is not None:
        return await send_raw(raw, request_line)
    model, contents, config = sdk_arguments(request_line)
    try:
        response = await client.aio.models.generate_content(model=model, contents=contents, config=config)
    except errors.APIError as exc:
        body = exc.details.get("error") if isinstance(exc.details, Mapping) else None
        error = {**(body if isinstance(body, Mapping) else {}), "code": exc.code, "status": exc.status,
                 "message": exc.message}
        raise google_failed(int(exc.code or 0), error, getattr(exc.response, "headers", None)) from exc
    except _TIMEOUTS as exc:
        raise connection_failed(True, f"no answer in time ({type(exc).__name__})") from exc
    except _LOST as exc:
        raise connection_failed(False, f"connection lost ({type(exc).__name__})") from exc
    wire = response.model_dump(mode="json", by_alias=True, exclude_none=True)
    return decode_response(str(request_line["key"]), wire)


async def send_raw(raw: RawSender, request_line: dict[str, Any]) -> RawResult:
    """POST a Gemini line's request to ``{base}/models/{model}:generateContent`` (the model named by the URL,
    not the body); the answer decoded as the SDK path's."""
    key, request = str(request_line["key"]), request_line["request"]
    model = model_path(str(request_line.get("model") or request["model"]))
    body = {name: value for name, value in request.items() if name != "model"}
    answer = await raw.post(f"/{quote(model, safe='/')}:generateContent", body, key)
    return decode_response(key, answer)


def google_failed(status: int, error: Mapping[str, Any], headers: Mapping[str, str] | None) -> CallFailed:
    """The CallFailed of a Google error answer (a ``google.rpc.Status``: ``code``, ``status``, ``message``)."""
    code, message = status_error(error)
    failed = call_failed(status, code, message, headers)
    if failed.retry_after is None and (status == 429 or status >= 500):
        failed.retry_after = retry_delay(error)
    return failed


def retry_delay(error: Mapping[str, Any]) -> float | None:
    """The seconds a ``google.rpc.RetryInfo`` among the error's ``details`` asks to wait (``"37s"``, a protobuf
    Duration): Google APIs send their hint there rather than in a ``Retry-After`` header."""
    details = error.get("details")
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, Mapping) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            try:
                return max(0.0, float(str(detail.get("retryDelay", "")).removesuffix("s")))
            except ValueError:
                return None
    return None


def refused(status: int, payload: bytes, headers: Mapping[str, str]) -> CallFailed:
    """The raw path's error decoder (:data:`~airflow_llm_batch.backends.raw_realtime_send.Refuse`) for Google:
    the body's ``error`` Status, or the HTTP status alone when the body is not one (a proxy's page)."""
    document = error_document(payload)
    error = document.get("error") if isinstance(document, Mapping) else None
    if not isinstance(error, Mapping):
        error = {"message": str(document)[:200]}
    return google_failed(status, {"code": status, **error}, headers)  # the body's own code wins
