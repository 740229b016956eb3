"""Command line entry: run the emulator in the foreground until SIGINT or SIGTERM.

Wired as ``airflow-llm-batch emulator ...`` and ``python -m airflow_llm_batch.emulator``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from .config import EmulatorConfig
from .server import AsyncEmulator

DEFAULT_PORT = 8787


def build_parser(prog: str = "airflow-llm-batch emulator") -> argparse.ArgumentParser:
    """Arguments of the emulator command."""
    defaults = EmulatorConfig()
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a local emulator of the OpenAI and Anthropic batch APIs.",
    )
    parser.add_argument("--host", default=defaults.host, help="interface to bind (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="TCP port, 0 for any (default: %(default)s)"
    )
    parser.add_argument(
        "--requests-per-second",
        type=float,
        default=defaults.requests_per_second,
        help="processing pace of running batches (default: %(default)s)",
    )
    parser.add_argument(
        "--validating-seconds",
        type=float,
        default=defaults.validating_seconds,
        help="time an OpenAI batch stays validating (default: %(default)s)",
    )
    parser.add_argument(
        "--finalizing-seconds",
        type=float,
        default=defaults.finalizing_seconds,
        help="time between the last answer and the end of a batch (default: %(default)s)",
    )
    parser.add_argument(
        "--expire-after-seconds",
        type=float,
        default=None,
        help="expire batches still running after this many seconds (default: never)",
    )
    parser.add_argument("--api-key", default=None, help="require this API key on every request")
    parser.add_argument("--verbose", action="store_true", help="log batch lifecycle events to stderr")
    return parser


async def _run(config: EmulatorConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # no signal handlers on Windows
            loop.add_signal_handler(signum, stop.set)
    async with AsyncEmulator(config) as emulator:
        print(
            f"LLM batch emulator on {emulator.url} "
            f"(OpenAI base_url {emulator.openai_base_url}, Anthropic base_url {emulator.anthropic_base_url})",
            flush=True,
        )
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Run the emulator until interrupted; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = EmulatorConfig(
            host=args.host,
            port=args.port,
            requests_per_second=args.requests_per_second,
            validating_seconds=args.validating_seconds,
            finalizing_seconds=args.finalizing_seconds,
            expire_after_seconds=args.expire_after_seconds,
            api_key=args.api_key,
        )
    except ValueError as exc:
        parser.error(str(exc))
    if args.verbose:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(_run(config))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        sys.stderr.write(f"emulator: cannot listen on {args.host}:{args.port}: {exc}\n")
        return 1
    return 0
