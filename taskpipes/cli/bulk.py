"""Bulk actions with a preview: `taskpipes cancel|retry --pipeline P [filters]` prints the
runs it would touch and changes nothing; `--yes TOKEN` (the token the preview printed)
acts on exactly those runs.

A bulk action that silently widened its filter is the failure to avoid (Temporal UI
#2602: a bulk terminate dropped its filter): the token fixes the set, so a run that
enters the filter after the preview is not touched, and a set that changed is refused.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable

from sqlalchemy.orm import Session

from taskpipes.cli.exits import EXIT_USAGE
from taskpipes.cli.run_list import (
    add_filter_options,
    filter_argv,
    run_filter,
    run_json,
    runs_table,
)
from taskpipes.store.database import begin, reading
from taskpipes.store.run_search import SearchError, StalePreview, confirmed, preview
from taskpipes.store.tables import Run

# How many of the previewed runs are listed (the count is always whole).
SHOWN = 10
# Acts on the confirmed runs in one transaction; returns one line per run.
Action = Callable[[Session, list[int]], list[str]]


def add_bulk_options(parser: argparse.ArgumentParser) -> None:
    add_filter_options(parser)
    parser.add_argument("--yes", metavar="TOKEN", help="act on the runs the preview listed")


def is_bulk(args: argparse.Namespace) -> bool:
    return any(
        getattr(args, name) is not None
        for name in ("pipeline", "status", "since", "until", "error", "detail", "yes")
    )


def run_bulk(args: argparse.Namespace, command: str, action: Action) -> int:
    """Preview, or act with --yes; one line naming the problem, exit 2, when refused."""
    if args.pipeline is None:
        print(f"taskpipes {command}: a bulk {command} needs --pipeline", file=sys.stderr)
        return EXIT_USAGE
    try:
        runs = run_filter(args)
        if args.yes is None:
            return _preview(args, command, runs)
        with begin() as session:
            lines = action(session, confirmed(session, runs, args.yes))
    except (SearchError, StalePreview) as exc:
        print(f"taskpipes {command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print("\n".join(lines) if lines else "no runs: nothing done")
    return 0


def _preview(args: argparse.Namespace, command: str, runs: object) -> int:
    with reading() as session:
        seen = preview(session, runs)  # type: ignore[arg-type]
        first = [run_json(session.get_one(Run, run_id)) for run_id in seen.run_ids[:SHOWN]]
    print(f"{len(seen.run_ids)} run(s) match; nothing changed. The first {len(first)}:")
    print(runs_table(first, limit=len(first) + 1))
    again = shlex.join([command, *filter_argv(args), "--yes", seen.token])
    print(f"to {command} exactly these: taskpipes {again}")
    return 0
