"""The I/O half of `taskpipes status`: run rows from the database, depths from RabbitMQ.

taskpipes.observe.report turns what is read here into the report.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from pika.exceptions import AMQPError
from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from taskpipes.declare.pipeline import Pipeline
from taskpipes.declare.registry import registry
from taskpipes.declare.settings import get_settings
from taskpipes.observe.report import (
    PipelineStatus,
    QueueDepth,
    RunRow,
    StageRow,
    pipeline_status,
)
from taskpipes.rabbitmq import queues as rabbit
from taskpipes.store.controls import pause_note, pauses
from taskpipes.store.database import reading
from taskpipes.store.runs import IN_PROGRESS, SUCCEEDED, UNSUCCESSFUL
from taskpipes.store.tables import Run, StageRun


def gather(now: datetime) -> list[PipelineStatus]:
    """The status of every registered pipeline at `now`."""
    pipelines = registry.pipelines
    queues = {entry.queue_name for entry in pipelines}
    depths, note = read_depths(get_settings().broker_url, queues)
    statuses = []
    with reading() as session:
        paused = pause_notes(session)
        for entry in pipelines:
            queue = entry.queue_name
            success, failure, in_progress = run_rows(session, entry.name)
            newest = max(
                (r for r in (success, failure, *in_progress) if r is not None),
                key=lambda r: (r.tick, r.run_id),
                default=None,
            )
            depth = None if depths is None else depths[queue]
            statuses.append(
                pipeline_status(
                    entry.name,
                    queue,
                    now=now,
                    period=_period(entry),
                    last_success=success,
                    last_failure=failure,
                    in_progress=in_progress,
                    depths=depth,
                    depths_note=note,
                    paused=paused.get(entry.name),
                    newest=(newest, [] if newest is None else stage_rows(session, newest.run_id)),
                )
            )
    return statuses


def stage_rows(session: Session, run_id: int) -> list[StageRow]:
    """A run's stages in the order they began, each output as its stored JSON text."""
    rows = session.execute(
        select(
            StageRun.stage,
            StageRun.status,
            StageRun.attempts,
            StageRun.rows_written,
            cast(StageRun.output, Text),
        )
        .where(StageRun.run_id == run_id)
        .order_by(StageRun.id)
    )
    return [StageRow(*row) for row in rows]


def pause_notes(session: Session) -> dict[str, str]:
    """The paused pipelines and `taskpipes pause`'s note on each."""
    return {name: pause_note(row) for name, row in pauses(session).items()}


def read_depths(
    broker_url: str | None, queues: Iterable[str]
) -> tuple[dict[str, QueueDepth] | None, str | None]:
    """Depths per queue, or None and the reason there are none."""
    if not broker_url:
        return None, "in-process broker"
    try:
        return rabbit.queue_depths(broker_url, queues), None
    except AMQPError as exc:
        return None, f"RabbitMQ unreachable: {type(exc).__name__}"


def _period(entry: Pipeline) -> timedelta | None:
    return None if entry.schedule is None else entry.schedule.period


def _row(run: Run) -> RunRow:
    return RunRow(
        run.id,
        run.tick,
        run.status,
        run.started_at,
        run.finished_at,
        run.error,
        run.retried_by,
        run.retried_at,
    )


def _newest(session: Session, pipeline: str, statuses: tuple[str, ...]) -> RunRow | None:
    run = session.scalars(
        select(Run)
        .where(Run.pipeline == pipeline, Run.status.in_(statuses))
        .order_by(Run.tick.desc())
        .limit(1)
    ).first()
    return None if run is None else _row(run)


def freshness(
    session: Session, entries: Iterable[Pipeline], now: datetime
) -> dict[str, PipelineStatus]:
    """Each pipeline's status at `now` from its newest success alone: the freshness rule of
    /readyz and of the web page's stale banner (taskpipes.observe.report.FRESH_PERIODS)."""
    paused = pause_notes(session)
    return {
        entry.name: pipeline_status(
            entry.name,
            entry.queue_name,
            now=now,
            period=_period(entry),
            last_success=_newest(session, entry.name, (SUCCEEDED,)),
            paused=paused.get(entry.name),
        )
        for entry in entries
    }


def run_rows(session: Session, pipeline: str) -> tuple[RunRow | None, RunRow | None, list[RunRow]]:
    """The newest success, the newest failure and every unfinished run of `pipeline`."""
    unfinished = session.scalars(
        select(Run).where(Run.pipeline == pipeline, Run.status.in_(IN_PROGRESS)).order_by(Run.tick)
    )
    return (
        _newest(session, pipeline, (SUCCEEDED,)),
        _newest(session, pipeline, UNSUCCESSFUL),
        [_row(run) for run in unfinished],
    )
