"""`taskpipes run stargazers`: its options, the live progress bar and `--no-wait`.

Imports stay light at module level: the parser is built before any command runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskpipes.declare.pipeline import Pipeline
    from taskpipes.runtime.runner import Outcome

from taskpipes.cli.exits import EXIT_USAGE
from taskpipes.declare import clock

# The pipeline these `taskpipes run` options belong to.
PIPELINE = "stargazers"


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def add_options(run: argparse.ArgumentParser) -> None:
    """The `run` options that only apply to stargazers."""
    run.add_argument("--repo", help="stargazers: one repository owner/name (default: the top 100)")
    run.add_argument(
        "--rate",
        type=positive_int,
        help="stargazers: star events inserted per second at most (2000)",
    )
    run.add_argument(
        "--api-rate",
        type=positive_int,
        help="stargazers: GitHub requests per hour at most (4000 with a token, 50 without)",
    )
    run.add_argument("--no-wait", action="store_true", help="stargazers: enqueue, print the run id")


def given(args: argparse.Namespace) -> list[str]:
    """The stargazers-only options present on the command line."""
    names = {"repo": "--repo", "rate": "--rate", "api_rate": "--api-rate", "no_wait": "--no-wait"}
    return [flag for name, flag in names.items() if getattr(args, name, None)]


def tick_options(args: argparse.Namespace) -> dict[str, object]:
    options = {"repo": args.repo, "rate": args.rate, "api_rate": args.api_rate}
    return {key: value for key, value in options.items() if value is not None}


def run(entry: Pipeline, args: argparse.Namespace) -> Outcome | int:
    """Wait with a progress bar (an Outcome), or enqueue only and return an exit code."""
    from taskpipes.runtime.runner import run_tick

    at = args.at or clock.now()
    if args.no_wait:
        return enqueue_only(entry, at, tick_options(args))
    with StarProgress() as bar:
        return run_tick(
            entry,
            at,
            float("inf") if args.timeout is None else args.timeout,
            tick_options(args),
            on_poll=bar.update,
        )


def enqueue_only(entry: Pipeline, at: datetime, options: dict[str, object]) -> int:
    from taskpipes.declare.settings import get_settings
    from taskpipes.runtime.runner import tick_of
    from taskpipes.runtime.ticks import enqueue_tick

    if get_settings().in_process:
        print(
            "taskpipes run: --no-wait needs BROKER_URL: without a broker the workers "
            "live in this process and would die with it",
            file=sys.stderr,
        )
        return EXIT_USAGE
    run_id, done = enqueue_tick(entry, tick_of(entry, at), options)
    print(f"run {run_id}" + (" (already succeeded: nothing to do)" if done else ""))
    return 0


class StarProgress:
    """A tqdm bar over a stargazers run: pages stored of planned, rows/s and ETA."""

    def __init__(self) -> None:
        self.bar: Any = None  # a tqdm bar, made once the plan is known
        self.started = time.monotonic()

    def update(self, run_id: int) -> None:
        from tqdm import tqdm

        from pipelines import stargazers
        from taskpipes.store.database import begin

        with begin() as session:
            progress = stargazers.progress(session, run_id)
        if progress is None or not progress.planned:
            return
        if self.bar is None:
            # disable=None: no bar when stderr is not a terminal (logs, CI).
            self.bar = tqdm(total=progress.planned, unit="page", disable=None, mininterval=0.5)
        rows_per_s = progress.rows / max(time.monotonic() - self.started, 1e-9)
        self.bar.set_postfix_str(f"{rows_per_s:,.0f} rows/s", refresh=False)
        self.bar.update(progress.done - self.bar.n)

    def __enter__(self) -> StarProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
