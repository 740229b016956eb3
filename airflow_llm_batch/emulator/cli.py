"""Command line entry: run the emulator in the foreground until SIGINT or SIGTERM.

Wired as ``airflow-llm-batch emulator ...`` and ``python -m airflow_llm_batch.emulator``.
The fault flags (``--row-error-rate``, ``--expire-batches``, ``--http-error-rate``...) put a
:class:`~.faults.FaultPlan` in force from the start; ``POST``/``DELETE /_emulator/fault-plan``
change it while the emulator runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from typing import Any

from .config import EmulatorConfig
from .faults import FaultPlan
from .server import AsyncEmulator

DEFAULT_PORT = 8787


def build_parser(prog: str = "airflow-llm-batch emulator") -> argparse.ArgumentParser:
    """Arguments of the emulator command."""
    defaults = EmulatorConfig()
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a local emulator of the OpenAI (and Azure OpenAI), Anthropic, Gemini and Vertex AI "
                    "batch APIs.",
    )
    parser.add_argument("--host", default=defaults.host, help="interface to bind (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="TCP port, 0 for any (default: %(default)s)"
    )
    _add_config_arguments(parser)
    parser.add_argument("--no-batch-api", dest="batch_api", action="store_false",
                        help="answer 404 on the OpenAI file and batch routes, like vLLM (real-time routes only)")
    parser.add_argument("--verbose", action="store_true", help="log batch lifecycle events to stderr")
    _add_fault_arguments(parser)
    return parser


_CONFIG_FLAGS: tuple[tuple[str, str, Any, str], ...] = (
    ("requests_per_second", "--requests-per-second", float,
     "processing pace of running batches (default: %(default)s)"),
    ("validating_seconds", "--validating-seconds", float,
     "time an OpenAI batch stays validating (default: %(default)s)"),
    ("finalizing_seconds", "--finalizing-seconds", float,
     "time between the last answer and the end of a batch (default: %(default)s)"),
    ("expire_after_seconds", "--expire-after-seconds", float,
     "expire batches still running after this many seconds (default: never)"),
    ("api_key", "--api-key", str, "require this API key on every request"),
    ("realtime_latency_seconds", "--realtime-latency-seconds", float,
     "time each real-time answer takes (default: %(default)s)"),
    ("realtime_max_concurrency", "--realtime-max-concurrency", int,
     "real-time requests in flight beyond this get a 429 with Retry-After (default: no limit)"),
    ("realtime_retry_delay_seconds", "--realtime-retry-delay-seconds", float,
     "Gemini/Vertex real-time 429s carry this delay as google.rpc.RetryInfo, not Retry-After"),
)
"""(EmulatorConfig field, flag, type, help) of the flags that set the config; defaults are the config's."""


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = EmulatorConfig()
    for field_name, flag, kind, text in _CONFIG_FLAGS:
        parser.add_argument(flag, dest=field_name, type=kind, default=getattr(defaults, field_name), help=text)


def _statuses(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated HTTP statuses, got {text!r}") from exc


_FAULT_FLAGS: tuple[tuple[str, str, Any, str], ...] = (
    ("row_error_rate", "--row-error-rate", float, "share of custom_ids whose requests fail"),
    ("row_error_code", "--row-error-code", str, "error code of those failures"),
    ("row_error_times", "--row-error-times", int, "a chosen custom_id fails its first N submissions, 0 = always"),
    ("expire_batches", "--expire-batches", int, "the first N batches expire part-way"),
    ("expire_done_fraction", "--expire-done-fraction", float, "share answered when those batches expire"),
    ("http_error_rate", "--http-error-rate", float, "share of API requests answered with a transient error"),
    ("http_error_statuses", "--http-error-statuses", _statuses, "comma-separated statuses of those errors"),
    ("slow_factor", "--slow-factor", float, "divide the processing pace by this"),
    ("malformed_output_rate", "--malformed-output-rate", float, "share of custom_ids whose output line is broken"),
    ("enqueued_token_limit", "--enqueued-token-limit", int, "OpenAI enqueued prompt tokens per model"),
    ("lost_creates", "--lost-creates", int, "the first N batch creates that work lose their answer"),
    ("lost_create_status", "--lost-create-status", int, "status of those lost answers, 0 = drop the connection"),
    ("hung_creates", "--hung-creates", int, "the next N creates that work answer nothing until the client gives up"),
    ("hang_seconds", "--hang-seconds", float, "longest wait of those hung answers"),
    ("seed", "--fault-seed", int, "seed of every fault choice"),
)


def _add_fault_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "fault plan", "deterministic faults for both providers (see airflow_llm_batch.emulator.faults)"
    )
    defaults = FaultPlan()
    for field_name, flag, kind, text in _FAULT_FLAGS:
        default = getattr(defaults, field_name)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        group.add_argument(
            flag, dest=f"fault_{field_name}", type=kind, default=None, help=f"{text} (default: {shown})"
        )


def fault_plan_from_args(args: argparse.Namespace) -> FaultPlan | None:
    """The fault plan the command line asks for, None when no fault flag is given."""
    given = {
        field_name: getattr(args, f"fault_{field_name}")
        for field_name, *_ in _FAULT_FLAGS
        if getattr(args, f"fault_{field_name}", None) is not None
    }
    return FaultPlan(**given) if given else None


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
        if emulator.fault_plan is not None:
            print(f"fault plan: {emulator.fault_plan}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Run the emulator until interrupted; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = EmulatorConfig(
            host=args.host,
            port=args.port,
            fault_plan=fault_plan_from_args(args),
            batch_api=args.batch_api,
            **{field_name: getattr(args, field_name) for field_name, *_ in _CONFIG_FLAGS},
        )
    except (ValueError, TypeError) as exc:
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
