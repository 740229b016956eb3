"""The operations commands of ``airflow-llm-batch``: ``prices``, ``report``, ``runs`` and ``clean``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from airflow_llm_batch.pipeline.prices import PRICE_FIELDS


def add_commands(sub: Any) -> None:
    """Register the operations commands on the main parser's subparsers."""
    prices = sub.add_parser("prices", help="show the effective price table with each price's date and source")
    prices.add_argument("--prices-file", default=None,
                        help="a price file to merge instead of the [llm_batch] prices_file setting")
    prices.add_argument("--provider", default=None, help="only this provider")
    report = sub.add_parser("report", help="write the HTML report of a task run and print its path")
    report.add_argument("location", metavar="WORKSPACE_OR_RUN",
                        help="a task run folder (holding manifest.json), or a workspace: its latest run")
    report.add_argument("--include-text", action="store_true", help="show the answers of failed rows")
    runs = sub.add_parser("runs", help="list recent runs of a workspace: rows, cost, saving, duration, failures")
    runs.add_argument("--workspace", default=None, help="default: the [llm_batch] workspace setting")
    runs.add_argument("--since", default="7d", help="how far back, e.g. 12h, 7d, 2w (default 7d)")
    clean = sub.add_parser("clean", help="delete run folders and request-cache entries older than an age")
    clean.add_argument("--older-than", required=True, help="age, e.g. 90m, 12h, 30d, 2w")
    clean.add_argument("--workspace", default=None, help="default: the [llm_batch] workspace setting")
    clean.add_argument("--dry-run", action="store_true", help="list what would go (counts and bytes), delete nothing")
    clean.add_argument("--force", action="store_true", help="also delete run folders whose batches are still open")


def run_command(args: argparse.Namespace) -> int:
    handlers = {"prices": show_prices, "report": make_report, "runs": list_runs, "clean": clean}
    try:
        return handlers[args.command](args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def show_prices(args: argparse.Namespace) -> int:
    from airflow_llm_batch.operators.effective_prices import STALE_AFTER_DAYS, age_in_days, effective_table

    table = effective_table(args.prices_file)
    print("USD per 1M tokens: " + ", ".join(PRICE_FIELDS))
    for provider in table.providers:
        if args.provider and provider != args.provider.lower():
            continue
        for model in table.models(provider):
            price, origin = table.price_for(provider, model), table.origin_of(provider, model)
            assert price is not None and origin is not None
            age = age_in_days(origin.taken_on)
            stale = " STALE" if age is not None and age > STALE_AFTER_DAYS else ""
            values = " ".join(f"{getattr(price, f):g}" for f in PRICE_FIELDS)
            print(f"{provider:<10} {model:<26} {values:<36} {origin.taken_on or '?'}{stale}  {origin.source}")
    return 0


def make_report(args: argparse.Namespace) -> int:
    from airflow_llm_batch.report import as_path, run_folders, write_report
    from airflow_llm_batch.report.facts import load_manifest

    location = as_path(args.location)
    if not (location / "manifest.json").exists():
        folders = list(run_folders(location))
        if not folders:
            raise FileNotFoundError(f"{args.location} holds no task run (no manifest.json below it)")
        location = max(folders, key=lambda f: load_manifest(f).created_at)
    print(write_report(location, include_text=args.include_text))
    return 0


def list_runs(args: argparse.Namespace) -> int:
    from airflow_llm_batch.report import as_path, format_runs, parse_since, recent_runs

    workspace = args.workspace
    if workspace is None:
        from airflow_llm_batch.operators.run_context import default_workspace

        workspace = default_workspace()
    print(format_runs(recent_runs(as_path(workspace), parse_since(args.since))))
    return 0


def clean(args: argparse.Namespace) -> int:
    from airflow_llm_batch.retention import clean_workspace, parse_age

    parse_age(args.older_than)  # a bad age fails before the workspace is read
    print(clean_workspace(args.workspace, older_than=args.older_than, dry_run=args.dry_run,
                          force=args.force).describe())
    return 0
