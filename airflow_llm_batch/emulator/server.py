"""The emulator's HTTP server: app factory, middleware, and the runners users start in tests.

* :func:`create_app` builds the aiohttp application: each provider module mounts its routes
  (``add_routes(app, state)``); the :mod:`.gateway` middleware checks the API key, plays injected
  faults and the fault plan (:mod:`.faults`), and turns errors into each provider's JSON shape;
  :mod:`.control` mounts the control routes.
* :class:`AsyncEmulator` runs the server in the caller's event loop (``async with``).
* :class:`Emulator` runs it in a background thread with its own event loop, for synchronous code
  and tests (``with Emulator(cfg) as emu``).

Control routes: see :mod:`.control` (``GET /_emulator/stats``, ``POST /_emulator/reset``...).
"""

from __future__ import annotations

import abc
import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from . import count_tokens_api, realtime_api
from .config import EmulatorConfig
from .control import add_control_routes
from .faults import Fault, FaultPlan
from .gateway import PROVIDERS, STATE_KEY, gateway
from .state import Clock, EmulatorState

log = logging.getLogger(__name__)

_T = TypeVar("_T")


def create_app(state: EmulatorState) -> web.Application:
    """The aiohttp application serving every emulated provider over ``state``."""
    config = state.config
    app = web.Application(
        middlewares=[gateway],
        client_max_size=max(config.anthropic_max_batch_bytes, config.max_batch_file_bytes) + 1,
    )
    app[STATE_KEY] = state
    for provider in PROVIDERS:
        state.stats_for(provider.name)
        provider.add_routes(app, state)
    realtime_api.add_routes(app, state)
    count_tokens_api.add_routes(app, state)
    add_control_routes(app)
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


class _EmulatorHandle(abc.ABC):
    """Addresses and test controls shared by both runners, written once.

    Every control reads or changes the emulator's state through :meth:`_call`, which the
    threaded :class:`Emulator` points at its server loop: the controls are safe from any thread.
    """

    config: EmulatorConfig

    @abc.abstractmethod
    def _call(self, action: Callable[[EmulatorState], _T]) -> _T:
        """Run ``action`` on the state, on the loop that owns it."""

    @property
    @abc.abstractmethod
    def address(self) -> tuple[str, int]:
        """The (host, port) the server socket is bound to."""

    @property
    def port(self) -> int:
        return self.address[1]

    @property
    def url(self) -> str:
        """``http://HOST:PORT``."""
        return f"http://{_url_host(self.config.host)}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """``base_url`` for ``openai.OpenAI``/``AsyncOpenAI``: ``url + "/v1"``."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """``base_url`` for ``anthropic.Anthropic``/``AsyncAnthropic``: ``url``."""
        return self.url

    def stats(self) -> dict[str, Any]:
        """Snapshot of what each provider was asked to do (see :class:`~.state.ProviderStats`)."""
        return self._call(EmulatorState.stats_snapshot)

    def reset_stats(self) -> None:
        """Zero the statistics (batches and files stay)."""
        self._call(EmulatorState.reset_stats)

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
        self._call(lambda state: state.faults.append(fault))

    def clear_faults(self) -> None:
        self._call(lambda state: state.faults.clear())

    @property
    def fault_plan(self) -> FaultPlan | None:
        """The fault plan in force, None when there is none."""
        return self._call(lambda state: state.fault_plan.plan)

    def set_fault_plan(self, plan: FaultPlan) -> None:
        """Put ``plan`` in force for every provider and restart its counters (see :mod:`.faults`)."""
        if not isinstance(plan, FaultPlan):
            raise TypeError("plan must be a FaultPlan")
        self._call(lambda state: state.fault_plan.set(plan))

    def clear_fault_plan(self) -> None:
        """Remove the fault plan: new batches and requests behave normally again."""
        self._call(lambda state: state.fault_plan.set(None))


class AsyncEmulator(_EmulatorHandle):
    """The emulator server running in the current event loop.

    ``async with AsyncEmulator(cfg) as emu:`` starts it and stops it; ``emu.url`` and the base
    URLs are valid while it runs. :meth:`stats` and the other controls must be called from the
    same loop.
    """

    def __init__(self, config: EmulatorConfig | None = None, *, clock: Clock | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.state = EmulatorState(self.config, clock or time.time)
        self._runner: web.AppRunner | None = None
        self._address: tuple[str, int] | None = None

    def _call(self, action: Callable[[EmulatorState], _T]) -> _T:
        return action(self.state)

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


class Emulator(_EmulatorHandle):
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
        self.config = self._inner.config

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

    def _call(self, action: Callable[[EmulatorState], _T]) -> _T:
        """Run ``action`` on the server's loop (directly when not running: nobody else touches it)."""
        loop, state = self._loop, self._inner.state
        if loop is None:
            return action(state)

        async def call() -> _T:
            return action(state)

        return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=30)

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
