"""Reopening a finished, unsuccessful run for `taskpipes retry`: it goes on from the first
stage not recorded done, or, with `from_stage`, recomputes from that stage on.

The stages recorded done are kept, outputs and all: their records say `succeeded`, so the
take statement never runs them again (taskpipes.store.stage_records), and the next stage reads
the last done stage's output as its input. Reopening writes the database only; the caller
sends the stage message in the same transaction, before it commits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from taskpipes.declare.pipeline import FanOut, Pipeline, Stage
from taskpipes.store import controls
from taskpipes.store.runs import (
    LOCK_RUN,
    QUEUED,
    REOPENABLE,
    RUNNING,
    SUCCEEDED,
    WAITING,
    reopen_stage,
)
from taskpipes.store.tables import Run, StageRun
from taskpipes.store.upsert import upsert


class RetryRefused(ValueError):
    """The run cannot be retried as asked; the message names why, in one line."""


@dataclass(frozen=True)
class Asked:
    """Who asked for a retry and when; `from_stage` recomputes from that stage on."""

    who: str
    at: datetime
    from_stage: str | None = None


@dataclass(frozen=True)
class Reopened:
    """A run put back to running, and the stage its message goes to; or, for a `queue`
    pipeline with a run still running, put back to waiting (`waits`): the run that closes
    sends its first stage (taskpipes.store.controls.next_waiting), and the stages recorded
    done pass it on to `stage` without running."""

    run: Run
    pipeline: Pipeline
    stage: Stage | FanOut
    waits: bool = False


def check_stage(pipeline: Pipeline, stage: str | None) -> None:
    if stage is not None and stage not in pipeline.stage_names:
        raise RetryRefused(
            f"pipeline {pipeline.name!r} has no stage {stage!r}; "
            f"its stages: {', '.join(pipeline.stage_names)}"
        )


def reopen_run(
    session: Session,
    lookup: Callable[[str], Pipeline],
    run_id: int,
    asked: Asked,
) -> Reopened:
    """Lock the run, check it may be retried, reopen it; RetryRefused says why not."""
    run = session.get(Run, run_id, with_for_update=LOCK_RUN)
    if run is None:
        raise RetryRefused(f"no run {run_id}")
    try:
        pipeline = lookup(run.pipeline)
    except KeyError:
        raise RetryRefused(f"run {run_id} is of pipeline {run.pipeline!r}, not declared") from None
    from_stage = asked.from_stage
    check_stage(pipeline, from_stage)
    if run.status not in REOPENABLE:
        raise RetryRefused(
            f"run {run_id} is {run.status}: only a {', '.join(REOPENABLE)} run is retried"
        )
    if from_stage is not None:
        for name in pipeline.stage_names[pipeline.stage_names.index(from_stage) :]:
            reopen_stage(session, run_id, name)
    stage = first_unfinished(session, pipeline, run_id)
    hold_stage(session, run_id, stage.name)
    waits = waits_its_turn(session, pipeline, run)
    run.status, run.error, run.finished_at = WAITING if waits else RUNNING, None, None
    run.cancelled_by = run.cancelled_at = None
    run.retried_by, run.retried_at = asked.who, asked.at
    run.started_at = run.started_at or asked.at
    run.attempts += 1
    return Reopened(run, pipeline, stage, waits)


def waits_its_turn(session: Session, pipeline: Pipeline, run: Run) -> bool:
    """A retried run of a `queue` pipeline waits while another runs, as a claimed tick
    does (controls.admit): the policy is one run at a time, retried ones included."""
    if pipeline.overlap != "queue":
        return False
    controls.control(session, pipeline.name, lock=True)  # as a claim: a closer takes turns
    return bool(controls.running_others(session, pipeline, run))


def hold_stage(session: Session, run_id: int, stage: str) -> None:
    """Lock the record of the stage the message goes to (made queued if absent) until the
    reopening commits. The message is published before the commit, and a stage's take reads
    the run without locking it: holding the record makes the take wait for the commit, so
    no later statement of the run's stages sees it still failed (the last stage's close
    would find it finished and leave it running)."""
    row = {"run_id": run_id, "stage": stage, "status": QUEUED, "attempts": 0}
    upsert(session, StageRun.__table__, [row], key=("run_id", "stage"), update=())
    session.scalars(
        select(StageRun.id)
        .where(StageRun.run_id == run_id, StageRun.stage == stage)
        .with_for_update()
    ).one()


def first_unfinished(session: Session, pipeline: Pipeline, run_id: int) -> Stage | FanOut:
    """The first stage not recorded done. When every one is (a run closed between its last
    stage and its close), the last: its take finds it done and closes the run."""
    done = set(
        session.scalars(
            select(StageRun.stage).where(StageRun.run_id == run_id, StageRun.status == SUCCEEDED)
        )
    )
    return next((s for s in pipeline.stages if s.name not in done), pipeline.stages[-1])
