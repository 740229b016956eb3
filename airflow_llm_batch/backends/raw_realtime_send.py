"""The raw real-time send: a request line's body POSTed on one HTTP client per backend (the lean HTTP/1.1
client, or aiohttp behind a proxy: backends/raw_http.py ``open_client``), in place of the SDK's
``client.post`` (whose request building and httpx adapter cost several times the CPU).

Where and with which headers comes from :mod:`airflow_llm_batch.backends.raw_http` (the same place the
triggerer's raw poll reads them from); the answer's JSON goes to the backend's own decoder, exactly as
the SDK path hands it. Errors map as on the SDK path: each backend gives its own error decoder
(:data:`Refuse`; default :func:`refused`, the Stainless SDKs' ``error.code`` / ``error.type``; Google's
canonical ``error.status`` is read by backends/realtime_google.py ``refused``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from airflow_llm_batch.backends.lean_http import ConnectionFailed
from airflow_llm_batch.backends.raw_http import MAX_CONNECTIONS, HttpClient, RawTarget, decode, encode, open_client
from airflow_llm_batch.backends.realtime_wire import CUSTOM_ID_HEADER, call_failed, connection_failed, error_field
from airflow_llm_batch.realtime.runner import CallFailed

#: an HTTP error answer (status, body bytes, headers) -> the CallFailed the runner sees
Refuse = Callable[[int, bytes, Mapping[str, str]], CallFailed]
#: OpenAI paths Azure serves under ``/deployments/{model}`` (as the openai SDK's Azure client does)
AZURE_DEPLOYMENT_PATHS = frozenset({"/completions", "/chat/completions", "/embeddings"})


class RawSender:
    """``await sender.post(path, body, custom_id)`` -> the answer's JSON, over one HTTP client per backend.

    The client (``session``) opens on first use (inside the running loop) with at most ``limit`` sockets
    and closes on :meth:`aclose`. It never resends a POST by itself. A failed call raises CallFailed
    exactly as the SDK path maps it (backends/realtime_wire.py): an HTTP error with the provider's code
    and Retry-After hint (read by ``refuse``, the backend's error decoder), a timeout or lost connection as
    ``connection_failed``."""

    def __init__(self, target: RawTarget, limit: int = MAX_CONNECTIONS, refuse: Refuse | None = None) -> None:
        self.target, self.limit, self.refuse = target, limit, refuse or refused
        self.session: HttpClient | None = None
        self._query = target.query_string()

    def url(self, path: str, body: Mapping[str, Any]) -> str:
        """``base + path``; on Azure, the deployment's URL rules of the openai SDK's Azure client."""
        azure_base, base = self.target.azure_base, self.target.base
        if azure_base and path not in AZURE_DEPLOYMENT_PATHS:
            base = azure_base  # a fixed deployment serves only its own paths
        elif azure_base == "" and path in AZURE_DEPLOYMENT_PATHS and body.get("model"):
            path = f"/deployments/{quote(str(body['model']), safe='')}{path}"
        return base + path + self._query

    async def post(self, path: str, body: Mapping[str, Any], custom_id: str) -> Any:
        if self.session is None:
            self.session = open_client(json_target(self.target), self.limit)
        try:
            status, headers, payload = await self.session.request(
                "POST", self.url(path, body), encode(body), {CUSTOM_ID_HEADER: custom_id})
        except (TimeoutError, asyncio.TimeoutError) as exc:
            raise connection_failed(True, f"no answer in time ({type(exc).__name__})") from exc
        except ConnectionFailed as exc:
            raise connection_failed(False, f"connection lost ({exc})") from exc
        if status >= 400:
            raise self.refuse(status, payload, headers)
        return decode(payload)

    async def aclose(self) -> None:
        if self.session is not None:
            await self.session.aclose()
            self.session = None


class RealtimeTransport:
    """A backend's way to send real-time calls: its :class:`RawSender`, built on the first send, or None
    where the SDK path stays (``build`` found no raw target: custom auth, Azure AD tokens, no key).

    ``connections``: the most sockets the session opens (set it to the run's ``max_concurrency`` before the
    first send); ``use_sdk``: send through the SDK client instead (benchmarks and comparisons); ``refuse``:
    the backend's error decoder (default :func:`refused`)."""

    def __init__(self, build: Callable[[], RawTarget | None], connections: int = MAX_CONNECTIONS,
                 refuse: Refuse | None = None) -> None:
        self.build, self.connections, self.use_sdk, self.refuse = build, connections, False, refuse
        self._sender: RawSender | None = None
        self._built = False

    def sender(self) -> RawSender | None:
        if self.use_sdk:
            return None
        if not self._built:
            target, self._built = self.build(), True
            self._sender = RawSender(target, self.connections, self.refuse) if target is not None else None
        return self._sender

    async def aclose(self) -> None:
        """Close the session (if one opened); a later send opens a new one."""
        if self._sender is not None:
            await self._sender.aclose()


def json_target(target: RawTarget) -> RawTarget:
    """The target with ``Content-Type: application/json`` (the bodies sent), unless its headers set one."""
    if any(name.lower() == "content-type" for name in target.headers):
        return target
    return replace(target, headers={**target.headers, "content-type": "application/json"})


def error_document(payload: bytes) -> object:
    """An error answer's body: its JSON, else its text (a proxy's HTML page...)."""
    try:
        document: object = json.loads(payload)
    except ValueError:
        document = payload.decode(errors="replace")
    return document


def refused(status: int, payload: bytes, headers: Mapping[str, str]) -> CallFailed:
    """The CallFailed of an HTTP error answer (OpenAI, Azure, Anthropic): the provider's ``error.code``
    (or ``type``) and message, the server's hint."""
    document = error_document(payload)
    code = error_field(document, "code", "type")
    message = error_field(document, "message") or f"Error code: {status} - {document}"
    return call_failed(status, code, message, headers)
