"""`taskpipes runs`: the run history, searched by pipeline, status, tick range, error text
or a key of the run's details; newest first, a page at a time."""

from __future__ import annotations

import argparse
import json
import sys

from taskpipes.cli import arguments
from taskpipes.cli.exits import EXIT_USAGE
from taskpipes.store.database import reading
from taskpipes.store.run_search import MAX_PAGE, RunFilter, SearchError, page, parse_detail
from taskpipes.store.runs import STATUSES
from taskpipes.store.tables import Run

# How much of an error a table row shows (--json has it whole).
ERROR_CHARS = 60


def add_filter_options(parser: argparse.ArgumentParser, pipeline_required: bool = False) -> None:
    """The filter options `runs`, `retry` and `cancel` share."""
    parser.add_argument("--pipeline", required=pipeline_required, help="one pipeline's runs")
    parser.add_argument(
        "--status", action="append", choices=STATUSES, help="runs with this status (repeatable)"
    )
    parser.add_argument("--since", type=arguments.tick, help="ticks at or after, ISO 8601")
    parser.add_argument("--until", type=arguments.tick, help="ticks at or before, ISO 8601")
    parser.add_argument("--error", help="runs whose error contains this text (any case)")
    parser.add_argument("--detail", help="runs whose details have KEY=VALUE")


def run_filter(args: argparse.Namespace) -> RunFilter:
    return RunFilter(
        pipeline=args.pipeline,
        statuses=tuple(args.status or ()),
        since=args.since,
        until=args.until,
        error=args.error,
        detail=parse_detail(args.detail) if args.detail else None,
    )


def filter_argv(args: argparse.Namespace) -> list[str]:
    """The filter options again, as a command line that gives the same filter."""
    argv = ["--pipeline", args.pipeline] if args.pipeline else []
    for status in args.status or ():
        argv += ["--status", status]
    for name in ("since", "until"):
        if (value := getattr(args, name)) is not None:
            argv += [f"--{name}", value.isoformat()]
    for name in ("error", "detail"):
        if (value := getattr(args, name)) is not None:
            argv += [f"--{name}", value]
    return argv


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    runs = sub.add_parser("runs", help="search the run history, newest first")
    add_filter_options(runs)
    runs.add_argument(
        "--limit", type=int, default=50, help=f"runs per page, 1-{MAX_PAGE} (default 50)"
    )
    runs.add_argument("--after", type=int, help="the last run id of the page before")
    runs.add_argument("--json", action="store_true", help="print JSON")
    runs.set_defaults(handler=cmd_runs)


def cmd_runs(args: argparse.Namespace) -> int:
    try:
        with reading() as session:
            found = page(session, run_filter(args), args.limit, args.after)
            rows = [run_json(run) for run in found]
    except SearchError as exc:
        print(f"taskpipes runs: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(rows, indent=2) if args.json else runs_table(rows, args.limit))
    return 0


def run_json(run: Run) -> dict[str, object]:
    return {
        "id": run.id,
        "pipeline": run.pipeline,
        "tick": run.tick.isoformat(),
        "status": run.status,
        "attempts": run.attempts,
        "error": run.error,
        "details": run.details,
        "retried_by": run.retried_by,
        "retried_at": run.retried_at.isoformat() if run.retried_at else None,
    }


def runs_table(rows: list[dict[str, object]], limit: int) -> str:
    if not rows:
        return "no runs match"
    lines = [f"{'id':>8}  {'pipeline':<16} {'tick':<25} {'status':<10} error"]
    for row in rows:
        error = str(row["error"] or "").replace("\n", " ")
        if row.get("retried_by"):
            at = str(row["retried_at"])[:16]  # to the minute; --json has it whole
            error = f"(retried by {row['retried_by']} at {at}) {error}".rstrip()
        cut = error if len(error) <= ERROR_CHARS else error[: ERROR_CHARS - 1] + "…"
        lines.append(
            f"{row['id']:>8}  {row['pipeline']:<16} {row['tick']:<25} {row['status']:<10} {cut}"
        )
    if len(rows) == limit:
        lines.append(f"(next page: --after {rows[-1]['id']})")
    return "\n".join(lines)
