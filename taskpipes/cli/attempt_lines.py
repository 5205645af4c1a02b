"""`taskpipes run` on RabbitMQ: each failed attempt of the run, printed as the workers
record it.

In-process workers log their own line per failed attempt (taskpipes.runtime.stages), which the
command prints; workers elsewhere log theirs in their own processes, so the waiting command
reads the stage records it polls anyway and prints the failures it has not shown yet.
"""

from __future__ import annotations

import sys
from typing import TextIO

from sqlalchemy import select

from taskpipes.store.database import reading
from taskpipes.store.runs import FAILED
from taskpipes.store.tables import StageRun


class FailedAttempts:
    """Called after each poll of a run (runner.wait_for's on_poll): prints one line per
    failed attempt recorded since the last call."""

    def __init__(self, pipeline: str, out: TextIO = sys.stderr) -> None:
        self.pipeline = pipeline
        self.out = out
        self.shown: set[tuple[str, int]] = set()

    def __call__(self, run_id: int) -> None:
        with reading() as session:
            failed = session.execute(
                select(StageRun.stage, StageRun.attempts, StageRun.error).where(
                    StageRun.run_id == run_id, StageRun.status == FAILED
                )
            ).all()
        for stage, attempt, error in failed:
            if (stage, attempt) in self.shown:
                continue
            self.shown.add((stage, attempt))
            cause = (error or "").removeprefix(f"{stage}: ")
            where = f"{self.pipeline} stage {stage}, run {run_id}"
            print(f"{where}: attempt {attempt} failed: {cause}", file=self.out, flush=True)
