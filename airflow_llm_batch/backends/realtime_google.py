"""Real-time send for Gemini and Vertex AI: a batch request line's ``GenerateContentRequest``, sent
through google-genai's ``client.aio.models.generate_content`` (the ordinary ``:generateContent``).

The line becomes the SDK's arguments with the same conversion the inline batch path uses
(:func:`~airflow_llm_batch.backends.gemini_request.inlined_request`); the answer is decoded by the
batch decoder (:func:`~airflow_llm_batch.backends.generate_content.decode_response`). The SDK's own
retries are off: the real-time runner owns retries and counts them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import httpx
from google import genai
from google.genai import errors, types

from airflow_llm_batch.backends.gemini_request import inlined_request
from airflow_llm_batch.backends.generate_content import decode_response, status_error
from airflow_llm_batch.backends.realtime_wire import CUSTOM_ID_HEADER, call_failed, connection_failed
from airflow_llm_batch.pipeline.types import RawResult

_TIMEOUTS = (httpx.TimeoutException, asyncio.TimeoutError)
_LOST = (httpx.TransportError, aiohttp.ClientError)


def sdk_arguments(request_line: dict[str, Any]) -> tuple[str, Any, types.GenerateContentConfig]:
    """(model, contents, config) of a Gemini line ``{"key", "request"}`` or a Vertex line ``{"key", "model",
    "request"}``; the config carries the row's header and no SDK retries."""
    inlined = inlined_request(request_line)
    model = str(request_line.get("model") or inlined["model"])
    options = types.HttpOptions(headers={CUSTOM_ID_HEADER: str(request_line["key"])},
                                retry_options=types.HttpRetryOptions(attempts=1))
    config = types.GenerateContentConfig.model_validate({**inlined.get("config", {}), "http_options": options})
    return model, inlined["contents"], config


async def send(client: genai.Client, request_line: dict[str, Any]) -> RawResult:
    """Send the line's request; the answer as a RawResult, or CallFailed (policy codes) without one."""
    model, contents, config = sdk_arguments(request_line)
    try:
        response = await client.aio.models.generate_content(model=model, contents=contents, config=config)
    except errors.APIError as exc:
        code, message = status_error({"code": exc.code, "status": exc.status, "message": exc.message})
        raise call_failed(int(exc.code or 0), code, message, getattr(exc.response, "headers", None)) from exc
    except _TIMEOUTS as exc:
        raise connection_failed(True, f"no answer in time ({type(exc).__name__})") from exc
    except _LOST as exc:
        raise connection_failed(False, f"connection lost ({type(exc).__name__})") from exc
    wire = response.model_dump(mode="json", by_alias=True, exclude_none=True)
    return decode_response(str(request_line["key"]), wire)
