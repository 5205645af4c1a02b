"""What operators set on pipelines and runs: pause and resume, cancel, and what a claimed
tick does about the pause and the pipeline's overlap policy. Database only, no broker.

The pause lives in `pipeline_controls`, so every worker and scheduler sees it and it
survives restarts. A claim locks the pipeline's row there, so two ticks of one pipeline
are admitted one at a time and the overlap policy sees the runs as they are. A tick the
`queue` policy holds back is left `waiting`, with no message of its own: whatever closes
the run ahead of it starts it (`next_waiting`, under the same lock).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from taskpipes.declare import clock
from taskpipes.declare.pipeline import OVERLAP_POLICIES, Pipeline, Stage
from taskpipes.store import runs
from taskpipes.store.tables import PipelineControl, Run, StageRun
from taskpipes.store.upsert import upsert

# What a claimed tick does.
START, WAIT = "start", "wait"


class ControlError(ValueError):
    """An operator request that cannot be done; the message says why."""


@dataclass(frozen=True)
class Admission:
    """What a claimed tick does: START its first stage, WAIT (queue policy: the run is
    `waiting`, and the run ahead of it starts it when it closes), or nothing because it was
    closed with `status` (paused, skipped)."""

    action: str | None
    status: str | None = None
    reason: str | None = None
    cancelled: tuple[int, ...] = ()


def control(session: Session, pipeline: str, lock: bool = False) -> PipelineControl:
    """The pipeline's control row, created if absent; locked for this transaction if asked."""
    upsert(
        session, PipelineControl.__table__, [{"pipeline": pipeline}], key=("pipeline",), update=()
    )
    query = select(PipelineControl).where(PipelineControl.pipeline == pipeline)
    if lock:
        query = query.with_for_update()
    return session.scalars(query).one()


def is_paused(row: PipelineControl | None) -> bool:
    return row is not None and row.paused_at is not None and row.resumed_at is None


def pause_note(row: PipelineControl) -> str:
    why = f": {row.pause_reason}" if row.pause_reason else ""
    assert row.paused_at is not None
    return f"paused by {row.paused_by} at {row.paused_at.isoformat()}{why}"


def pause(session: Session, pipeline: str, by: str, reason: str | None, now: datetime) -> bool:
    """Pause `pipeline`; False when it already was (its first pause is kept)."""
    row = control(session, pipeline, lock=True)
    if is_paused(row):
        return False
    row.paused_at, row.paused_by, row.pause_reason, row.resumed_at = now, by, reason, None
    return True


def resume(session: Session, pipeline: str, now: datetime) -> bool:
    """Resume `pipeline`; the next catch-up pass applies its policy to the paused ticks.
    False when it was not paused."""
    row = control(session, pipeline, lock=True)
    if not is_paused(row):
        return False
    row.resumed_at = now
    return True


def clear_pause(session: Session, pipeline: str) -> None:
    """Forget a resumed pause once its paused ticks are caught up."""
    row = control(session, pipeline, lock=True)
    if row.resumed_at is not None:
        row.paused_at = row.paused_by = row.pause_reason = row.resumed_at = None


def pauses(session: Session) -> dict[str, PipelineControl]:
    """The paused pipelines' control rows, by pipeline."""
    rows = session.scalars(
        select(PipelineControl).where(
            PipelineControl.paused_at.is_not(None), PipelineControl.resumed_at.is_(None)
        )
    )
    return {row.pipeline: row for row in rows}


def paused_ticks(session: Session, pipeline: str) -> set[datetime]:
    return set(
        session.scalars(select(Run.tick).where(Run.pipeline == pipeline, Run.status == runs.PAUSED))
    )


def admit(session: Session, pipeline: Pipeline, run: Run, explicit: bool) -> Admission:
    """Decide, in the claiming transaction, what the claimed `run` does; closes it when
    it is not to run. Locks the pipeline's control row first."""
    row = control(session, pipeline.name, lock=True)
    if is_paused(row):
        note = pause_note(row)
        runs.finish_run(session, run.id, runs.PAUSED, error=note)
        return Admission(None, runs.PAUSED, note)
    if pipeline.overlap == "allow":
        return Admission(START)
    others = running_others(session, pipeline, run)
    if not others:
        return Admission(START)
    names = ", ".join(f"run {o.id} (tick {o.tick.isoformat()})" for o in others)
    if pipeline.overlap == "skip":
        note = f"overlap policy skip: {names} still running"
        runs.finish_run(session, run.id, runs.SKIPPED, error=note)
        return Admission(None, runs.SKIPPED, note)
    if pipeline.overlap == "queue":
        run.status = runs.WAITING
        return Admission(WAIT, reason=f"overlap policy queue: waits for {names}")
    assert pipeline.overlap == "cancel_previous", OVERLAP_POLICIES
    by = f"overlap policy cancel_previous of tick {run.tick.isoformat()}"
    cancelled = tuple(o.id for o in others if cancel(session, pipeline, o, by, clock.now()))
    return Admission(START, cancelled=cancelled)


def next_waiting(session: Session, pipeline: Pipeline) -> int | None:
    """Start the oldest waiting run of a `queue` pipeline when none runs: marked running
    here, its first stage is the caller's to send before this transaction commits. Called
    by whatever closes a run (in the closing transaction on the happy path) and by the
    catch-up pass, which restarts a queue a crash left standing.

    The control row is locked first, as a claim locks it before it decides to wait: a
    closer and a tick that is about to wait take turns, so no waiting run is missed.
    A waiting run whose row another transaction holds (its tick message redelivered, being
    admitted again) is passed over. None while paused: the queue goes on after a resume."""
    if pipeline.overlap != "queue":
        return None
    row = session.scalars(
        select(PipelineControl).where(PipelineControl.pipeline == pipeline.name).with_for_update()
    ).first()
    if row is None or is_paused(row):
        return None  # no row: no tick of the pipeline was ever claimed, so none waits
    if running_others(session, pipeline, None):
        return None
    run = session.scalars(
        select(Run)
        .where(Run.pipeline == pipeline.name, Run.status == runs.WAITING)
        .order_by(Run.tick)
        .limit(1)
        .with_for_update(skip_locked=True, key_share=True)  # runs.LOCK_RUN
    ).first()
    if run is None:
        return None
    run.status, run.started_at = runs.RUNNING, clock.now()
    return run.id


def running_others(session: Session, pipeline: Pipeline, run: Run | None) -> list[Run]:
    """Other runs of the pipeline still running that could still be working: a run started
    longer ago than its stages' time limits and retries allow is left to the crash guard."""
    since = clock.now() - pipeline.longest_run
    return list(
        session.scalars(
            select(Run)
            .where(
                Run.pipeline == pipeline.name,
                Run.status == runs.RUNNING,
                *([] if run is None else [Run.id != run.id]),
                Run.started_at >= since,
            )
            .order_by(Run.tick)
        )
    )


def cancel(session: Session, pipeline: Pipeline, run: Run, by: str, now: datetime) -> bool:
    """End an unfinished run `cancelled`: its remaining stages do not start (run_stage
    checks), a stage already running finishes. False when it had already finished."""
    run = session.get_one(Run, run.id, with_for_update=runs.LOCK_RUN)
    if run.status in runs.FINISHED:
        return False
    done = set(
        session.scalars(
            select(StageRun.stage).where(
                StageRun.run_id == run.id, StageRun.status == runs.SUCCEEDED
            )
        )
    )
    note = f"cancelled by {by} at {now.isoformat()}"
    current = next((s for s in pipeline.stages if s.name not in done), None)
    if current is not None and run.status == runs.RUNNING:
        # A stage records itself only as it commits, so "running" cannot be told from
        # "about to start": say what happens either way.
        retries = (current.retries if isinstance(current, Stage) else None) or pipeline.retries
        note += (
            f"; stage {current.name} was running or next: a running stage finishes, or "
            f"Dramatiq cuts it at its time limit of {retries.time_limit_ms // 1000} s; "
            "no later stage starts"
        )
    runs.finish_run(session, run.id, runs.CANCELLED, error=note)
    run.cancelled_by, run.cancelled_at = by, now
    return True


def cancel_run(
    session: Session, lookup: Callable[[str], Pipeline], run_id: int, by: str, now: datetime
) -> Run:
    """`taskpipes cancel RUN_ID`; a clear error when there is nothing to cancel."""
    run = session.get(Run, run_id)
    if run is None:
        raise ControlError(f"no run {run_id}")
    if not cancel(session, lookup(run.pipeline), run, by, now):
        raise ControlError(f"run {run_id} already finished ({run.status}): nothing to cancel")
    return run
