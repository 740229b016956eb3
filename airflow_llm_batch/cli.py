"""`airflow-llm-batch` command: `emulator` (serve the bundled batch-API emulator), `demo`, and the
operations commands `prices`, `report` and `runs` (see cli_ops)."""

from __future__ import annotations

import argparse
import sys

from airflow_llm_batch.cli_ops import add_commands, run_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="airflow-llm-batch", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("emulator", help="run the bundled batch-API emulator (loopback by default)", add_help=False)
    demo = sub.add_parser("demo", help="run the example DAG end to end on the emulator")
    demo.add_argument("--rows", type=int, default=500, help="number of synthetic tickets (default 500)")
    demo.add_argument("--home", default=".demo", help="folder for AIRFLOW_HOME, data and results")
    add_commands(sub)
    args, rest = parser.parse_known_args(argv)
    if args.command in ("prices", "report", "runs", "clean"):
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return run_command(args)
    if args.command == "emulator":
        from airflow_llm_batch.emulator import main as emulator_main

        return emulator_main(rest)
    from airflow_llm_batch.demo import run_demo

    return run_demo(rows=args.rows, home=args.home)


if __name__ == "__main__":
    sys.exit(main())
