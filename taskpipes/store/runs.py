"""Run history and the tick lock: one row per (pipeline, tick), claimed before any work.

The unique key on (pipeline, tick) is the lock. Claiming is an INSERT that does nothing on
conflict followed by a conditional UPDATE, so two schedulers that race on the same tick
serialise on the database row and exactly one of them wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from taskpipes.declare import clock
from taskpipes.store.tables import Run, StageRun
from taskpipes.store.upsert import upsert

# The message option naming the run a stage message works for.
RUN_OPTION = "taskpipes_run"
# The statuses of runs and stages, named once.
QUEUED, WAITING, RUNNING, SUCCEEDED, FAILED, DEAD, SKIPPED, PAUSED, CANCELLED = (
    "queued",
    "waiting",
    "running",
    "succeeded",
    "failed",
    "dead",
    "skipped",
    "paused",
    "cancelled",
)
# Every status a run or stage can have.
STATUSES = (QUEUED, WAITING, RUNNING, SUCCEEDED, FAILED, DEAD, SKIPPED, PAUSED, CANCELLED)
# Statuses of a run that has not finished yet. WAITING: claimed, held back by the `queue`
# overlap policy until the run ahead of it closes (taskpipes.store.controls.next_waiting).
IN_PROGRESS = (QUEUED, WAITING, RUNNING)
# Statuses after which a run does nothing more unless asked explicitly.
FINISHED = (SUCCEEDED, FAILED, DEAD, SKIPPED, PAUSED, CANCELLED)
# Finished without success: an explicit request may run these again.
REOPENABLE = (FAILED, DEAD, SKIPPED, PAUSED, CANCELLED)
# Finished without success and will not go on by itself.
UNSUCCESSFUL = (FAILED, DEAD)
# Finished as its own tick message decided, or an operator: a redelivery of that same
# message (an ack lost) changes nothing. Only an explicit request runs such a tick again.
SETTLED = (SUCCEEDED, SKIPPED, CANCELLED)
# Error texts are cut so one huge traceback cannot bloat the run table.
MAX_ERROR_CHARS = 2000
# How a run's row is locked: FOR NO KEY UPDATE. A running stage holds its run's row in KEY
# SHARE for as long as it works (its record refers to the run), which a plain FOR UPDATE
# would wait for: a cancel or a claim would wait on every running stage.
LOCK_RUN: dict[str, Any] = {"key_share": True}


# taskpipes.runtime.stages still reads the clock by this name (it is being edited in another
# branch); it is the one clock, taskpipes.declare.clock.now. Remove once stages.py calls that.
utcnow = clock.now


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming a tick: `run_id` is set only when this delivery may work."""

    run_id: int | None
    reason: str


def record_queued_many(
    session: Session, pipeline: str, message_ids: Mapping[datetime, str]
) -> dict[datetime, Run]:
    """Note explicit requests for ticks (tick -> its message id) before their messages are
    sent; returns each tick's run, locked for this transaction.

    A finished run is re-opened for the new message; a queued or running one is left alone;
    a run whose `message_id` is the new one is the one to send. Two statements for any
    number of ticks.
    """
    now = clock.now()
    rows = [
        {
            "pipeline": pipeline,
            "tick": tick,
            "status": QUEUED,
            "attempts": 0,
            "message_id": message_id,
            "enqueued_at": now,
        }
        for tick, message_id in message_ids.items()
    ]
    upsert(session, Run.__table__, rows, key=("pipeline", "tick"), update=())
    wanted = {tick.astimezone(UTC): tick for tick in message_ids}
    found = session.scalars(
        select(Run)
        .where(Run.pipeline == pipeline, Run.tick.in_(list(message_ids)))
        .with_for_update(key_share=True)  # LOCK_RUN
    )
    recorded = {wanted[run.tick.astimezone(UTC)]: run for run in found}
    for tick, run in recorded.items():
        if run.status in REOPENABLE:
            _reopen(session, run, message_ids[tick])
    return recorded


def claim(
    session: Session, pipeline: str, tick: datetime, message_id: str, explicit: bool
) -> Claim:
    """Take the tick for this message, or say why another delivery already has it."""
    run = _queued_run(session, pipeline, tick, message_id)
    if run.message_id != message_id:
        if not (explicit and run.status in REOPENABLE):
            return Claim(None, f"tick already taken by message {run.message_id} ({run.status})")
        _reopen(session, run, message_id)
    elif run.status in SETTLED:
        return Claim(None, f"tick already {run.status}")
    elif run.status in REOPENABLE:
        _reopen(session, run, message_id)
    run.status = RUNNING
    run.attempts += 1
    run.started_at = clock.now()
    run.finished_at = None
    run.error = None
    return Claim(run.id, "claimed")


def _queued_run(session: Session, pipeline: str, tick: datetime, message_id: str) -> Run:
    """The tick's run, created as queued for `message_id` if absent, locked for this transaction.

    Insert-if-absent then lock: concurrent claimers of one tick serialise on its row.
    """
    row = {
        "pipeline": pipeline,
        "tick": tick,
        "status": QUEUED,
        "attempts": 0,
        "message_id": message_id,
        "enqueued_at": clock.now(),
    }
    upsert(session, Run.__table__, [row], key=("pipeline", "tick"), update=())
    return _run(session, pipeline, tick, lock=True)


def _reopen(session: Session, run: Run, message_id: str) -> None:
    # A re-run starts over, so a stage that failed on stored data fetches afresh.
    session.execute(delete(StageRun).where(StageRun.run_id == run.id))
    run.status, run.message_id, run.enqueued_at = QUEUED, message_id, clock.now()


def _run(session: Session, pipeline: str, tick: datetime, lock: bool = False) -> Run:
    query = select(Run).where(Run.pipeline == pipeline, Run.tick == tick)
    if lock:
        query = query.with_for_update(key_share=True)  # LOCK_RUN
    return session.scalars(query).one()


def begin_stage(session: Session, run_id: int, stage: str) -> None:
    upsert(
        session,
        StageRun.__table__,
        [{"run_id": run_id, "stage": stage, "status": RUNNING, "attempts": 0}],
        key=("run_id", "stage"),
        update=(),
    )
    session.execute(
        update(StageRun)
        .where(StageRun.run_id == run_id, StageRun.stage == stage)
        .values(status=RUNNING, attempts=StageRun.attempts + 1, started_at=clock.now())
    )


def _end_stage(
    session: Session, run_id: int, stage: str, status: str, seconds: float, **values: Any
) -> None:
    session.execute(
        update(StageRun)
        .where(StageRun.run_id == run_id, StageRun.stage == stage)
        .values(status=status, finished_at=clock.now(), duration_seconds=seconds, **values)
    )


def finish_stage(
    session: Session, run_id: int, stage: str, rows_written: int, seconds: float
) -> None:
    _end_stage(session, run_id, stage, SUCCEEDED, seconds, rows_written=rows_written, error=None)


def finish_stage_once(session: Session, run_id: int, stage: str, rows_written: int) -> None:
    """Record a stage done unless it is already (a fan-out's); it took since it began."""
    row = session.scalars(
        select(StageRun).where(StageRun.run_id == run_id, StageRun.stage == stage)
    ).first()
    if row is None:
        begin_stage(session, run_id, stage)
    elif row.status == SUCCEEDED:
        return
    now = clock.now()
    started = row.started_at if row is not None and row.started_at else now
    finish_stage(session, run_id, stage, rows_written, (now - started).total_seconds())


def fail_stage(session: Session, run_id: int, stage: str, error: str, seconds: float) -> None:
    """Record a failed attempt; the run shows it as its last error while it is unfinished.

    A run already closed (given up by `taskpipes run`, cancelled, dead) keeps the reason it
    was closed with: an attempt still in flight must not overwrite it."""
    _end_stage(session, run_id, stage, FAILED, seconds, error=error[:MAX_ERROR_CHARS])
    session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status.not_in(FINISHED))
        .values(error=error[:MAX_ERROR_CHARS])
    )


def reopen_stage(session: Session, run_id: int, stage: str) -> None:
    """Mark a finished stage as to be done again (a suspect answer asks for a re-fetch)."""
    session.execute(
        update(StageRun)
        .where(StageRun.run_id == run_id, StageRun.stage == stage)
        .values(status=QUEUED)
    )


def finish_run(
    session: Session, run_id: int, status: str, error: str | None = None, details: Any = None
) -> Run | None:
    """Close a run once; returns it only when this call changed its status.

    One statement: the UPDATE locks the row and re-checks the status after any concurrent
    closer committed, so exactly one of them gets the run back."""
    values: dict[str, Any] = {"status": status, "finished_at": clock.now()}
    if error is not None:
        values["error"] = error[:MAX_ERROR_CHARS]
    if details is not None:
        values["details"] = details
    closed = session.scalars(
        update(Run)
        .where(Run.id == run_id, Run.status.not_in(FINISHED))
        .values(**values)
        .returning(Run),
        execution_options={"populate_existing": True},
    )
    return closed.one_or_none()


def run_of_message(session: Session, message_id: str) -> int | None:
    """The unfinished run a tick message claimed or was recorded for."""
    return session.scalar(
        select(Run.id).where(Run.message_id == message_id, Run.status.in_(IN_PROGRESS))
    )


def get_run(session: Session, run_id: int) -> Run | None:
    return session.get(Run, run_id)


def find_run(session: Session, pipeline: str, tick: datetime) -> Run | None:
    return session.scalars(select(Run).where(Run.pipeline == pipeline, Run.tick == tick)).first()


def record_skipped(session: Session, pipeline: str, tick: datetime, reason: str) -> bool:
    """Record a tick that will never run, so the gap is visible. True when newly recorded."""
    now = clock.now()
    written = upsert(
        session,
        Run.__table__,
        [
            {
                "pipeline": pipeline,
                "tick": tick,
                "status": SKIPPED,
                "attempts": 0,
                "enqueued_at": now,
                "finished_at": now,
                "error": reason,
            }
        ],
        key=("pipeline", "tick"),
        update=(),
    )
    return bool(written) and _run(session, pipeline, tick).status == SKIPPED


def recorded_ticks(session: Session, pipeline: str, since: datetime) -> set[datetime]:
    return set(session.scalars(select(Run.tick).where(Run.pipeline == pipeline, Run.tick >= since)))


def first_tick(session: Session, pipeline: str) -> datetime | None:
    return session.scalar(select(func.min(Run.tick)).where(Run.pipeline == pipeline))


# Finished runs a replayed stage message may pick up again.
RESUMABLE = UNSUCCESSFUL


def resume(session: Session, run_id: int) -> Run | None:
    """Turn a failed or dead run back into a running one, for a replayed stage message.

    Its stage rows stay: stages already done are skipped by run_stage, so the run goes on
    from the stage that died. Returns the run only when this call reopened it.
    """
    run = session.get(Run, run_id, with_for_update=LOCK_RUN)
    if run is None or run.status not in RESUMABLE:
        return None
    run.status, run.finished_at, run.error = RUNNING, None, None
    return run


def note_trace(session: Session, run_id: int, trace_id: str) -> None:
    """Keep the trace a run's tick started (the first one: a retry's trace links to it by
    the run id its spans carry)."""
    session.execute(
        update(Run).where(Run.id == run_id, Run.trace_id.is_(None)).values(trace_id=trace_id)
    )
