"""The emulator's HTTP server: app factory, middleware, and the runners users start in tests.

* :func:`create_app` builds the aiohttp application: each provider module mounts its routes
  (``add_routes(app, state)``) and names the path prefixes whose errors it formats; a middleware
  checks the API key, plays injected faults and the fault plan's transient HTTP errors
  (:mod:`.faults`), and turns errors into each provider's JSON shape.
* :class:`AsyncEmulator` runs the server in the caller's event loop (``async with``).
* :class:`Emulator` runs it in a background thread with its own event loop, for synchronous code
  and tests (``with Emulator(cfg) as emu``).

Control routes (never behind the API key, never hit by injected faults): ``GET /_emulator/stats``,
``POST /_emulator/reset`` (zero the statistics), ``POST /_emulator/faults`` (body:
:class:`~.faults.Fault` fields), ``DELETE /_emulator/faults``, ``POST /_emulator/fault-plan``
(body: :class:`~.faults.FaultPlan` fields; puts the plan in force and restarts its counters),
``GET /_emulator/fault-plan`` (``{"fault_plan": {...} | null}``), ``DELETE /_emulator/fault-plan``,
``GET /_emulator/health``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import socket
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from . import anthropic_api, gemini_api, openai_api, vertex_api
from .config import EmulatorConfig
from .faults import Fault, FaultPlan
from .state import ApiError, Clock, EmulatorState, ProviderStats

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/_emulator"
STATE_KEY = web.AppKey("emulator_state", EmulatorState)
_T = TypeVar("_T")


@dataclass(frozen=True)
class Provider:
    """One emulated API: its routes and the error shape of its paths."""

    name: str
    path_prefixes: tuple[str, ...]
    add_routes: Callable[[web.Application, EmulatorState], object]
    error_body: Callable[[int, str], dict[str, Any]]
    transient_error: Callable[[int], web.Response]
    """The answer to a request hit by a fault plan HTTP error of the given status."""


PROVIDERS: tuple[Provider, ...] = (
    # Most specific prefixes first: /v1/messages belongs to Anthropic, the rest of /v1 to OpenAI.
    Provider(
        "anthropic",
        ("/v1/messages",),
        anthropic_api.add_routes,
        anthropic_api.error_body,
        anthropic_api.transient_error,
    ),
    Provider("vertex", vertex_api.PATH_PREFIXES, vertex_api.add_routes, vertex_api.error_body,
             vertex_api.transient_error),
    Provider("gemini", gemini_api.PATH_PREFIXES, gemini_api.add_routes, gemini_api.error_body,
             gemini_api.transient_error),
    Provider(
        "openai", ("/v1", "/openai"), openai_api.add_routes, openai_api.error_body, openai_api.transient_error
    ),
)
"""Emulated providers. A new one (e.g. Gemini) adds an entry with its own module."""


def _provider_for(path: str) -> Provider | None:
    for provider in PROVIDERS:
        if path.startswith(provider.path_prefixes):
            return provider
    return None


def _error_body_for(path: str, status: int, message: str) -> dict[str, Any]:
    provider = _provider_for(path)
    if provider is not None:
        return provider.error_body(status, message)
    return {"error": {"message": message}}


def _count_http_error(stats: ProviderStats | None, status: int) -> None:
    if stats is not None:
        stats.http_errors_injected += 1
        stats.http_errors_by_status[str(status)] += 1


def _authorized(request: web.Request, api_key: str) -> bool:
    """The key may come as ``Authorization: Bearer``, ``x-api-key`` (Anthropic) or ``api-key`` (Azure)."""
    offered: list[str] = []
    authorization = request.headers.get("Authorization", "")
    if authorization.lower().startswith("bearer "):
        offered.append(authorization[7:].strip())
    offered.extend(request.headers.getall("x-api-key", []))
    offered.extend(request.headers.getall("api-key", []))
    return any(hmac.compare_digest(candidate.encode(), api_key.encode()) for candidate in offered)


@web.middleware
async def _gateway(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Auth, injected faults, and provider-shaped errors for every API route."""
    state = request.app[STATE_KEY]
    path = request.path
    try:
        if not path.startswith(CONTROL_PREFIX):
            key = state.config.api_key
            if key is not None and not _authorized(request, key):
                return web.json_response(_error_body_for(path, 401, "Invalid API key."), status=401)
            provider = _provider_for(path)
            stats = state.stats_for(provider.name) if provider is not None else None
            if stats is not None:
                stats.api_requests += 1
            fault = state.take_fault(request.method, path)
            if fault is not None:
                if fault.lose_response:
                    await handler(request)
                _count_http_error(stats, fault.status)
                return web.json_response(
                    _error_body_for(path, fault.status, fault.message), status=fault.status
                )
            if provider is not None:
                status = state.fault_plan.take_http_error()
                if status is not None:  # before any processing: a retried create creates one batch
                    response = provider.transient_error(status)
                    _count_http_error(stats, response.status)
                    return response
        return await handler(request)
    except ApiError as exc:
        return web.json_response(exc.body(), status=exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.json_response(_error_body_for(path, exc.status, exc.reason), status=exc.status)
    except Exception as exc:  # a bug in the emulator: log where, never the message (it may hold prompt text)
        log.error(
            "emulator bug %s while handling %s %s\n%s",
            type(exc).__name__,
            request.method,
            path,
            "".join(traceback.format_tb(exc.__traceback__)),
        )
        return web.json_response(_error_body_for(path, 500, "Internal error in the emulator."), status=500)


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].stats_snapshot())


async def _reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset_stats()
    return web.json_response({"reset": True})


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _add_fault(request: web.Request) -> web.Response:
    try:
        payload = await request.json()
        fault = Fault(**payload)
    except (ValueError, TypeError) as exc:
        return web.json_response({"error": {"message": f"Invalid fault: {exc}"}}, status=400)
    request.app[STATE_KEY].faults.append(fault)
    return web.json_response({"added": True})


async def _clear_faults(request: web.Request) -> web.Response:
    request.app[STATE_KEY].faults.clear()
    return web.json_response({"cleared": True})


def _plan_json(state: EmulatorState) -> dict[str, Any]:
    plan = state.fault_plan.plan
    return {"fault_plan": None if plan is None else plan.to_json()}


async def _set_fault_plan(request: web.Request) -> web.Response:
    try:
        plan = FaultPlan.from_json(await request.json())
    except (ValueError, TypeError) as exc:
        return web.json_response({"error": {"message": f"Invalid fault plan: {exc}"}}, status=400)
    state = request.app[STATE_KEY]
    state.fault_plan.set(plan)
    return web.json_response(_plan_json(state))


async def _get_fault_plan(request: web.Request) -> web.Response:
    return web.json_response(_plan_json(request.app[STATE_KEY]))


async def _clear_fault_plan(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    state.fault_plan.set(None)
    return web.json_response(_plan_json(state))


def create_app(state: EmulatorState) -> web.Application:
    """The aiohttp application serving every emulated provider over ``state``."""
    config = state.config
    app = web.Application(
        middlewares=[_gateway],
        client_max_size=max(config.anthropic_max_batch_bytes, config.max_batch_file_bytes) + 1,
    )
    app[STATE_KEY] = state
    for provider in PROVIDERS:
        state.stats_for(provider.name)
        provider.add_routes(app, state)
    app.router.add_get(f"{CONTROL_PREFIX}/stats", _stats)
    app.router.add_post(f"{CONTROL_PREFIX}/reset", _reset)
    app.router.add_get(f"{CONTROL_PREFIX}/health", _health)
    app.router.add_post(f"{CONTROL_PREFIX}/faults", _add_fault)
    app.router.add_delete(f"{CONTROL_PREFIX}/faults", _clear_faults)
    app.router.add_post(f"{CONTROL_PREFIX}/fault-plan", _set_fault_plan)
    app.router.add_get(f"{CONTROL_PREFIX}/fault-plan", _get_fault_plan)
    app.router.add_delete(f"{CONTROL_PREFIX}/fault-plan", _clear_fault_plan)
    return app


def _bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on ``host:port`` (port 0 picks a free one)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        if hasattr(socket, "SO_REUSEADDR") and not hasattr(socket, "SO_EXCLUSIVEADDRUSE"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class AsyncEmulator:
    """The emulator server running in the current event loop.

    ``async with AsyncEmulator(cfg) as emu:`` starts it and stops it; ``emu.url`` and the base
    URLs are valid while it runs. :meth:`stats` must be called from the same loop.
    """

    def __init__(self, config: EmulatorConfig | None = None, *, clock: Clock | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.state = EmulatorState(self.config, clock or time.time)
        self._runner: web.AppRunner | None = None
        self._address: tuple[str, int] | None = None

    async def start(self) -> None:
        """Bind and start serving."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        runner = web.AppRunner(create_app(self.state), shutdown_timeout=1.0)
        await runner.setup()
        try:
            sock = _bind(self.config.host, self.config.port)
            site = web.SockSite(runner, sock)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        host, port = sock.getsockname()[:2]
        self._address = (host, port)
        self._runner = runner
        log.info("emulator listening on %s", self.url)

    async def stop(self) -> None:
        """Stop serving; idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def running(self) -> bool:
        return self._runner is not None

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the server socket is bound to."""
        if self._address is None:
            raise RuntimeError("the emulator has not been started")
        return self._address

    @property
    def port(self) -> int:
        return self.address[1]

    @property
    def url(self) -> str:
        """``http://HOST:PORT``."""
        return f"http://{_url_host(self.config.host)}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """``base_url`` for ``openai.OpenAI``/``AsyncOpenAI``."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """``base_url`` for ``anthropic.Anthropic``/``AsyncAnthropic``."""
        return self.url

    def stats(self) -> dict[str, Any]:
        """Snapshot of what each provider was asked to do (see :class:`~.state.ProviderStats`)."""
        return self.state.stats_snapshot()

    def reset_stats(self) -> None:
        self.state.reset_stats()

    def inject_fault(
        self,
        status: int,
        *,
        count: int = 1,
        path_prefix: str = "/",
        method: str | None = None,
        message: str | None = None,
        lose_response: bool = False,
    ) -> None:
        """Make the next ``count`` requests matching ``path_prefix``/``method`` fail with ``status``.

        With ``lose_response`` the request is carried out and only its answer is lost.
        """
        fault = Fault(status, count, path_prefix, method, lose_response=lose_response)
        if message is not None:
            fault.message = message
        self.state.faults.append(fault)

    def clear_faults(self) -> None:
        self.state.faults.clear()

    @property
    def fault_plan(self) -> FaultPlan | None:
        """The fault plan in force, None when there is none."""
        return self.state.fault_plan.plan

    def set_fault_plan(self, plan: FaultPlan) -> None:
        """Put ``plan`` in force for both providers and restart its counters (see :mod:`.faults`)."""
        if not isinstance(plan, FaultPlan):
            raise TypeError("plan must be a FaultPlan")
        self.state.fault_plan.set(plan)

    def clear_fault_plan(self) -> None:
        """Remove the fault plan: new batches and requests behave normally again."""
        self.state.fault_plan.set(None)

    async def __aenter__(self) -> AsyncEmulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


async def serve(
    config: EmulatorConfig | None = None, *, ready: Callable[[AsyncEmulator], None] | None = None
) -> None:
    """Run an emulator until the calling task is cancelled; ``ready`` is called once it listens."""
    async with AsyncEmulator(config) as emulator:
        if ready is not None:
            ready(emulator)
        await asyncio.Event().wait()


class Emulator:
    """The emulator server in a background thread with its own event loop.

    ``start()`` returns once the server accepts connections; ``stop()`` shuts it down and joins
    the thread (idempotent). Works as a context manager. All state stays on the server's loop:
    :meth:`stats` and friends hop onto it.
    """

    def __init__(self, config: EmulatorConfig | None = None, *, clock: Clock | None = None) -> None:
        self._inner = AsyncEmulator(config, clock=clock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def config(self) -> EmulatorConfig:
        return self._inner.config

    def start(self, timeout: float = 30.0) -> None:
        """Start the server thread and wait until it listens (re-raises a bind error)."""
        with self._lock:
            if self._thread is not None:
                raise RuntimeError("the emulator is already running")
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            failure: list[BaseException] = []

            def run() -> None:
                asyncio.set_event_loop(loop)
                try:
                    try:
                        loop.run_until_complete(self._inner.start())
                    except BaseException as exc:
                        failure.append(exc)
                        return
                    finally:
                        ready.set()
                    loop.run_forever()
                    loop.run_until_complete(self._inner.stop())
                    loop.run_until_complete(loop.shutdown_asyncgens())
                finally:
                    loop.close()

            thread = threading.Thread(target=run, name="llm-batch-emulator", daemon=True)
            thread.start()
            if not ready.wait(timeout):
                loop.call_soon_threadsafe(loop.stop)
                thread.join(timeout)
                raise TimeoutError("the emulator did not start in time")
            if failure:
                thread.join(timeout)
                raise failure[0]
            self._loop, self._thread = loop, thread

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server and join its thread; does nothing when not running."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
            if loop is None or thread is None:
                return
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the server socket is bound to."""
        return self._inner.address

    @property
    def port(self) -> int:
        return self._inner.port

    @property
    def url(self) -> str:
        """``http://HOST:PORT``."""
        return self._inner.url

    @property
    def openai_base_url(self) -> str:
        """``base_url`` for ``openai.OpenAI``/``AsyncOpenAI``: ``url + "/v1"``."""
        return self._inner.openai_base_url

    @property
    def anthropic_base_url(self) -> str:
        """``base_url`` for ``anthropic.Anthropic``/``AsyncAnthropic``: ``url``."""
        return self._inner.anthropic_base_url

    def _on_loop(self, function: Callable[[], _T]) -> _T:
        loop = self._loop
        if loop is None:  # not running: nobody else touches the state
            return function()

        async def call() -> _T:
            return function()

        return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=30)

    def stats(self) -> dict[str, Any]:
        """Snapshot of what each provider was asked to do (see :class:`~.state.ProviderStats`)."""
        return self._on_loop(self._inner.stats)

    def reset_stats(self) -> None:
        """Zero the statistics (batches and files stay)."""
        self._on_loop(self._inner.reset_stats)

    def inject_fault(
        self,
        status: int,
        *,
        count: int = 1,
        path_prefix: str = "/",
        method: str | None = None,
        message: str | None = None,
        lose_response: bool = False,
    ) -> None:
        """Make the next ``count`` requests matching ``path_prefix``/``method`` fail with ``status``.

        With ``lose_response`` the request is carried out and only its answer is lost.
        """
        self._on_loop(
            lambda: self._inner.inject_fault(
                status,
                count=count,
                path_prefix=path_prefix,
                method=method,
                message=message,
                lose_response=lose_response,
            )
        )

    def clear_faults(self) -> None:
        self._on_loop(self._inner.clear_faults)

    @property
    def fault_plan(self) -> FaultPlan | None:
        """The fault plan in force, None when there is none."""
        return self._on_loop(lambda: self._inner.fault_plan)

    def set_fault_plan(self, plan: FaultPlan) -> None:
        """Put ``plan`` in force for both providers and restart its counters (see :mod:`.faults`).

        Applied on the server's loop, so it is safe from any thread.
        """
        if not isinstance(plan, FaultPlan):
            raise TypeError("plan must be a FaultPlan")
        self._on_loop(lambda: self._inner.set_fault_plan(plan))

    def clear_fault_plan(self) -> None:
        """Remove the fault plan: new batches and requests behave normally again."""
        self._on_loop(self._inner.clear_fault_plan)

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
