"""The middleware every API request goes through: API key, injected faults, provider-shaped errors.

Each emulated provider is one :class:`Provider` entry: the path prefixes whose errors it formats,
its routes, its error shapes and the path of its batch create. The gateway

* checks the API key (never on the control routes under ``/_emulator``) and counts the request, for its
  provider (:func:`provider_of`: by path, and on the ``/v1`` paths OpenAI and Gemini share, by the client's
  marks), by its ``User-Agent`` family (:mod:`.user_agents`);
* plays one-off :class:`~.faults.Fault` s and the fault plan's transient HTTP errors, BEFORE the
  request is processed (a retried create then creates one batch);
* loses the answer of a create that worked when the fault plan says so (``lost_creates`` /
  ``hung_creates``): an error, a dropped connection, or no answer until the client gives up,
  AFTER the batch was created;
* turns :class:`~.state.ApiError`, HTTP exceptions and emulator bugs into each provider's JSON.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import anthropic_api, gemini_api, openai_api, vertex_api, wire
from .faults import CreateFault
from .state import ApiError, EmulatorState, ProviderStats
from .user_agents import agent_family

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/_emulator"
STATE_KEY = web.AppKey("emulator_state", EmulatorState)
HANG_POLL_SECONDS = 0.05
"""How often a hung answer checks whether the client gave up."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Provider:
    """One emulated API: its routes and the error shape of its paths."""

    name: str
    path_prefixes: tuple[str, ...]
    add_routes: Callable[[web.Application, EmulatorState], object]
    error_body: Callable[[int, str], dict[str, Any]]
    transient_error: Callable[[int], web.Response]
    """The answer to a request hit by a fault plan HTTP error of the given status."""
    create_path: re.Pattern[str]
    """``POST`` to a matching path creates a batch."""


PROVIDERS: tuple[Provider, ...] = (
    # Most specific prefixes first: /v1/messages belongs to Anthropic, the rest of /v1 to OpenAI.
    Provider("anthropic", ("/v1/messages",), anthropic_api.add_routes, anthropic_api.error_body,
             anthropic_api.transient_error, anthropic_api.CREATE_PATH),
    Provider("vertex", vertex_api.PATH_PREFIXES, vertex_api.add_routes, vertex_api.error_body,
             vertex_api.transient_error, vertex_api.CREATE_PATH),
    Provider("gemini", gemini_api.PATH_PREFIXES, gemini_api.add_routes, gemini_api.error_body,
             gemini_api.transient_error, gemini_api.CREATE_PATH),
    Provider("openai", ("/v1", "/openai"), openai_api.add_routes, openai_api.error_body,
             openai_api.transient_error, openai_api.CREATE_PATH),
)
"""Emulated providers. A new one adds an entry with its own module."""


_GEMINI = next(provider for provider in PROVIDERS if provider.name == "gemini")


def provider_for(path: str) -> Provider | None:
    for provider in PROVIDERS:
        if path.startswith(provider.path_prefixes):
            return provider
    return None


def provider_of(request: web.Request) -> Provider | None:
    """The provider a request is for: the one of its path, except that the ``/v1/batches`` and ``/v1/files``
    OpenAI shares with Gemini (google-genai 3.x asks there) are Gemini's when a Gemini client asks
    (:func:`.gemini_api.owns`): its stats and error shapes are Gemini's."""
    provider = provider_for(request.path)
    if provider is not None and provider.name == "openai" and gemini_api.owns(request):
        return _GEMINI
    return provider


def error_body_for(request: web.Request, status: int, message: str) -> dict[str, Any]:
    """The error body in the shape of the request's provider (:func:`provider_of`)."""
    provider = provider_of(request)
    if provider is not None:
        return provider.error_body(status, message)
    return {"error": {"message": message}}


def _count_http_error(stats: ProviderStats | None, status: int) -> None:
    if stats is not None:
        stats.http_errors_injected += 1
        stats.http_errors_by_status[str(status)] += 1


def _authorized(request: web.Request, api_key: str) -> bool:
    """The key may come as ``Authorization: Bearer``, ``x-api-key`` (Anthropic) or ``api-key`` (Azure)."""
    expected = api_key.encode()
    headers = request.headers
    authorization = headers.get("Authorization")
    if authorization is not None and authorization[:7].lower() == "bearer " \
            and hmac.compare_digest(authorization[7:].strip().encode(), expected):
        return True
    return any(hmac.compare_digest(candidate.encode(), expected)
               for name in ("x-api-key", "api-key") if name in headers for candidate in headers.getall(name))


def _drop_connection(request: web.Request) -> web.Response:
    """Close the connection with no answer; the returned response is never sent."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=502)


async def _hang(request: web.Request, seconds: float) -> web.Response:
    """Send nothing until the client disconnects or ``seconds`` pass, then drop the connection.

    Bounded, so the handler ends; on server shutdown aiohttp cancels it after its shutdown timeout.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        transport = request.transport
        if transport is None or transport.is_closing():
            break
        await asyncio.sleep(HANG_POLL_SECONDS)
    return _drop_connection(request)


async def _lose_create_answer(request: web.Request, state: EmulatorState, provider: Provider,
                              response: web.StreamResponse) -> web.StreamResponse:
    """The answer of a create that worked, unless the fault plan loses it (see ``lost_creates``)."""
    plan = state.fault_plan.plan
    if plan is None or response.status >= 300 or not provider.create_path.match(request.path):
        return response
    fault = state.fault_plan.take_create_fault()
    if fault is None:
        return response
    stats = state.stats_for(provider.name)
    stats.create_answers_lost += 1
    log.info("fault plan: the answer of a %s batch create is %s", provider.name, fault.value)
    if fault is CreateFault.HUNG:
        return await _hang(request, plan.hang_seconds)
    if plan.lost_create_status == 0:
        return _drop_connection(request)
    _count_http_error(stats, plan.lost_create_status)
    return provider.transient_error(plan.lost_create_status)


async def _faults_then_handler(request: web.Request, handler: Handler, state: EmulatorState) -> web.StreamResponse:
    """Auth and faults of one API request (not a control route), then the request itself."""
    path = request.path
    key = state.config.api_key
    provider = provider_of(request)
    stats = state.stats_for(provider.name) if provider is not None else None
    if key is not None and not _authorized(request, key):
        if stats is not None:
            stats.refused_requests += 1
        return wire.json_answer(error_body_for(request, 401, "Invalid API key."), status=401)
    if stats is not None:
        stats.api_requests += 1
        stats.requests_by_agent[agent_family(request.headers.get("User-Agent"))] += 1
    fault = state.take_fault(request.method, path)
    if fault is not None:
        if fault.lose_response:
            await handler(request)
        _count_http_error(stats, fault.status)
        return wire.json_answer(error_body_for(request, fault.status, fault.message), status=fault.status)
    if provider is None:
        return await handler(request)
    status = state.fault_plan.take_http_error()
    if status is not None:  # before any processing: a retried create creates one batch
        response = provider.transient_error(status)
        _count_http_error(stats, response.status)
        return response
    answer = await handler(request)
    if request.method != "POST" or state.fault_plan.plan is None:  # no plan: no answer to lose
        return answer
    return await _lose_create_answer(request, state, provider, answer)


@web.middleware
async def gateway(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Auth, injected faults, and provider-shaped errors for every API route."""
    path = request.path
    try:
        if path.startswith(CONTROL_PREFIX):
            return await handler(request)
        return await _faults_then_handler(request, handler, request.app[STATE_KEY])
    except ApiError as exc:
        return wire.json_answer(exc.body(), status=exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return wire.json_answer(error_body_for(request, exc.status, exc.reason), status=exc.status)
    except Exception as exc:  # a bug in the emulator: log where, never the message (it may hold prompt text)
        log.error(
            "emulator bug %s while handling %s %s\n%s",
            type(exc).__name__,
            request.method,
            path,
            "".join(traceback.format_tb(exc.__traceback__)),
        )
        return wire.json_answer(error_body_for(request, 500, "Internal error in the emulator."), status=500)
