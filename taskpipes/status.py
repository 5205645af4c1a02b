"""The I/O half of `taskpipes status`: run rows from the database, depths from RabbitMQ.

pipelines/status.py turns what is read here into the report.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from pika.exceptions import AMQPError
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Run
from db.session import begin
from pipelines.status import PipelineStatus, QueueDepth, RunRow, pipeline_status
from taskpipes import rabbit
from taskpipes.settings import get_settings

if TYPE_CHECKING:
    from actors.registry import PipelineEntry

# Statuses of a run that has not finished yet.
IN_PROGRESS = ("queued", "running")
# Statuses of a run that finished without success and will not go on by itself.
FAILED = ("failed", "dead")


def gather(now: datetime) -> list[PipelineStatus]:
    """The status of every registered pipeline at `now`."""
    from actors.registry import PIPELINES

    queues = {entry.tick_actor.queue_name for entry in PIPELINES.values()}
    depths, note = read_depths(get_settings().broker_url, queues)
    statuses = []
    with begin() as session:
        for entry in PIPELINES.values():
            queue = entry.tick_actor.queue_name
            success, failure, in_progress = run_rows(session, entry.name)
            depth = None if depths is None else depths[queue]
            statuses.append(
                pipeline_status(
                    entry.name,
                    queue,
                    entry.schedule.period if entry.scheduled else None,
                    success,
                    failure,
                    in_progress,
                    depth,
                    note,
                    now,
                )
            )
    return statuses


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


def _row(run: Run) -> RunRow:
    return RunRow(run.id, run.tick, run.status, run.started_at, run.finished_at, run.error)


def _newest(session: Session, pipeline: str, statuses: tuple[str, ...]) -> RunRow | None:
    run = session.scalars(
        select(Run)
        .where(Run.pipeline == pipeline, Run.status.in_(statuses))
        .order_by(Run.tick.desc())
        .limit(1)
    ).first()
    return None if run is None else _row(run)


def freshness(
    session: Session, entries: Iterable[PipelineEntry], now: datetime
) -> dict[str, PipelineStatus]:
    """Each pipeline's status at `now` from its newest success alone: the freshness rule of
    /readyz and of the web page's stale banner (pipelines.status.FRESH_PERIODS)."""
    return {
        entry.name: pipeline_status(
            entry.name,
            entry.tick_actor.queue_name,
            entry.schedule.period,
            _newest(session, entry.name, ("succeeded",)),
            None,
            [],
            None,
            None,
            now,
        )
        for entry in entries
    }


def run_rows(session: Session, pipeline: str) -> tuple[RunRow | None, RunRow | None, list[RunRow]]:
    """The newest success, the newest failure and every unfinished run of `pipeline`."""
    unfinished = session.scalars(
        select(Run).where(Run.pipeline == pipeline, Run.status.in_(IN_PROGRESS)).order_by(Run.tick)
    )
    return (
        _newest(session, pipeline, ("succeeded",)),
        _newest(session, pipeline, FAILED),
        [_row(run) for run in unfinished],
    )
