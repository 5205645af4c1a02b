"""`taskpipes pause`, `resume` and `cancel`: operator commands over the declarations.

They write the database only (no broker): every worker reads the pause at each tick and
the cancel at each stage message.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable

from sqlalchemy.orm import Session

from taskpipes.cli import bulk
from taskpipes.cli.discovery import declared_registry
from taskpipes.cli.exits import EXIT_USAGE
from taskpipes.declare import clock
from taskpipes.declare.pipeline import Pipeline
from taskpipes.store import controls
from taskpipes.store.database import begin
from taskpipes.store.tables import Run


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    pause = sub.add_parser("pause", help="record a pipeline's ticks as paused until resumed")
    pause.add_argument("pipeline")
    pause.add_argument("--reason", help="why, shown by status, /api/runs and the pages")
    resume = sub.add_parser("resume", help="run a paused pipeline again (catch-up per its policy)")
    resume.add_argument("pipeline")
    cancel = sub.add_parser("cancel", help="stop a run: its remaining stages do not start")
    cancel.add_argument("run_id", type=int, nargs="?", help="one run (or filter: --pipeline ...)")
    bulk.add_bulk_options(cancel)
    for command in (pause, cancel):
        command.add_argument("--by", default=None, help="who asks (default: the login name)")


def _who(args: argparse.Namespace) -> str:
    return args.by or getpass.getuser()


def _declared(name: str, command: str) -> bool:
    try:
        declared_registry().get(name)
    except KeyError as exc:
        print(f"taskpipes {command}: {exc.args[0]}", file=sys.stderr)
        return False
    return True


def cmd_pause(args: argparse.Namespace) -> int:
    if not _declared(args.pipeline, "pause"):
        return EXIT_USAGE
    with begin() as session:
        done = controls.pause(session, args.pipeline, _who(args), args.reason, clock.now())
        note = controls.pause_note(controls.control(session, args.pipeline))
    print(f"{args.pipeline}: {note}" + ("" if done else " (already paused)"))
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    if not _declared(args.pipeline, "resume"):
        return EXIT_USAGE
    with begin() as session:
        done = controls.resume(session, args.pipeline, clock.now())
    if not done:
        print(f"taskpipes resume: {args.pipeline} is not paused", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"{args.pipeline}: resumed; the next catch-up pass applies its policy to the paused ticks"
    )
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    registry = declared_registry()
    if (args.run_id is None) == (not bulk.is_bulk(args)):
        print(
            "taskpipes cancel: give a RUN_ID or filters (--pipeline ...), not both", file=sys.stderr
        )
        return EXIT_USAGE
    if args.run_id is None:
        return bulk.run_bulk(
            args, "cancel", lambda s, ids: cancel_each(s, registry.get, ids, _who(args))
        )
    try:
        with begin() as session:
            run = controls.cancel_run(session, registry.get, args.run_id, _who(args), clock.now())
            line = f"{run.pipeline} run {run.id} tick {run.tick.isoformat()}: {run.error}"
    except controls.ControlError as exc:
        print(f"taskpipes cancel: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(line)
    return 0


def cancel_each(
    session: Session, lookup: Callable[[str], Pipeline], run_ids: list[int], who: str
) -> list[str]:
    """Cancel each confirmed run still unfinished; a finished one is said, not touched."""
    lines = []
    for run_id in run_ids:
        run = session.get_one(Run, run_id)
        done = controls.cancel(session, lookup(run.pipeline), run, who, clock.now())
        lines.append(
            f"{run.pipeline} run {run.id}: " + ("cancelled" if done else f"already {run.status}")
        )
    return lines


COMMANDS = {"pause": cmd_pause, "resume": cmd_resume, "cancel": cmd_cancel}
