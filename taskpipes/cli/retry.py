"""`taskpipes retry`: run a failed, dead or cancelled run again from the stage that did
not finish (or `--from` an earlier one), and wait for it as `taskpipes run` does; or, with
filters, a bulk retry with a preview (taskpipes.cli.bulk).

The stages recorded done are kept and never run again: their outputs are handed on as if
the run had never stopped (taskpipes.store.retries).
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager

from sqlalchemy.orm import Session

from taskpipes.cli import arguments, bulk
from taskpipes.cli.discovery import declared_registry
from taskpipes.cli.exits import EXIT_FAILED, EXIT_USAGE
from taskpipes.declare import clock
from taskpipes.store.database import reading
from taskpipes.store.retries import Asked, RetryRefused, check_stage
from taskpipes.store.runs import SUCCEEDED
from taskpipes.store.tables import Run

# How long `taskpipes retry` waits for the runs it retried, by default (as `taskpipes run`).
DEFAULT_TIMEOUT_S = 600.0
# Prints a finished (or waited-for) run: taskpipes.cli.main.format_outcome.
Show = Callable[[object], str]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    retry = sub.add_parser(
        "retry", help="run a failed run again from the stage that did not finish, and wait"
    )
    retry.add_argument("run_id", type=int, nargs="?", help="one run (or filter: --pipeline ...)")
    retry.add_argument(
        "--from",
        dest="from_stage",
        metavar="STAGE",
        help="recompute from this stage on (default: the first stage not done)",
    )
    retry.add_argument("--by", default=None, help="who asks (default: the login name)")
    retry.add_argument("--timeout", type=arguments.seconds, help="seconds to wait (default 600)")
    bulk.add_bulk_options(retry)


def _asking(command: str, pipeline: str, batch: bool = False) -> AbstractContextManager[None]:
    from taskpipes.observe.tracing import asking
    from taskpipes.runtime.current import current_broker

    return asking(current_broker(), command, pipeline, batch=batch)


def _refused(reason: object) -> int:
    print(f"taskpipes retry: {reason}", file=sys.stderr)
    return EXIT_USAGE


def cmd_retry(args: argparse.Namespace, show: Show) -> int:
    if (args.run_id is None) == (not bulk.is_bulk(args)):
        return _refused("give a RUN_ID or filters (--pipeline ...), not both")
    timeout = DEFAULT_TIMEOUT_S if args.timeout is None else args.timeout
    if args.run_id is None:
        return _retry_bulk(args, timeout, show)
    from taskpipes.runtime.current import current_broker
    from taskpipes.runtime.resumption import retry_run, said
    from taskpipes.runtime.runner import ensure_workers

    registry = declared_registry()
    with reading() as session:
        run = session.get(Run, args.run_id)
        pipeline = run.pipeline if run is not None else None
    if pipeline is None:
        return _refused(f"no run {args.run_id}")
    ensure_workers(current_broker())
    try:
        with _asking("retry", pipeline):
            reopened = retry_run(registry.get, args.run_id, _asked(args))
    except RetryRefused as exc:
        return _refused(exc)
    print(f"{pipeline} run {args.run_id}: {said(reopened)}")
    return _waited([args.run_id], timeout, show)


def _asked(args: argparse.Namespace) -> Asked:
    return Asked(args.by or getpass.getuser(), clock.now(), args.from_stage)


def _retry_bulk(args: argparse.Namespace, timeout: float, show: Show) -> int:
    from taskpipes.runtime.current import current_broker
    from taskpipes.runtime.resumption import retry_each
    from taskpipes.runtime.runner import ensure_workers

    registry = declared_registry()
    if args.from_stage is not None and args.pipeline is not None:
        try:
            check_stage(registry.get(args.pipeline), args.from_stage)
        except (KeyError, RetryRefused) as exc:
            return _refused(exc.args[0])
    if args.yes is not None:
        ensure_workers(current_broker())
    retried: list[int] = []

    def act(session: Session, run_ids: list[int]) -> list[str]:
        lines, ids = retry_each(session, registry.get, run_ids, _asked(args))
        retried.extend(ids)
        return lines

    with _asking("retry", args.pipeline or "", batch=True):
        code = bulk.run_bulk(args, "retry", act)
    if code or not retried:
        return code
    return _waited(retried, timeout, show)


def _waited(run_ids: list[int], timeout: float, show: Show) -> int:
    """Wait for the retried runs as `taskpipes run` does; 0 only if every one succeeded."""
    from taskpipes.runtime.runner import abandoned_on_exit, wait_for

    deadline = time.monotonic() + timeout
    with abandoned_on_exit(run_ids, timeout):
        outcomes = [wait_for(r, max(deadline - time.monotonic(), 0.0)) for r in run_ids]
    if len(outcomes) == 1:
        print(show(outcomes[0]))
    else:
        counts = Counter(o.status for o in outcomes)
        print(f"{len(outcomes)} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
        for outcome in outcomes:
            if outcome.status != SUCCEEDED:
                print(show(outcome))
    return 0 if all(o.status == SUCCEEDED for o in outcomes) else EXIT_FAILED
