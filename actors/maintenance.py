"""maintenance actors: the daily batch job, through the same tick lock and run history."""

from __future__ import annotations

from datetime import timedelta

import dramatiq

from actors.stage import run_stage, stage_options
from actors.ticks import effective_schedule, start_tick
from db.models import Run
from db.session import begin
from pipelines import maintenance as pipeline
from pipelines.runs import utcnow
from pipelines.schedule import periodic_option
from taskpipes.settings import get_settings

QUEUE = "maintenance"
SCHEDULE = effective_schedule(pipeline.PIPELINE, pipeline.SCHEDULE)
RETRY_OPTIONS = stage_options(QUEUE, 3, 10_000, 300_000)


@dramatiq.actor(periodic=periodic_option(SCHEDULE), schedule=SCHEDULE, **RETRY_OPTIONS)
def maintenance_tick(tick: str | None = None, explicit: bool = False) -> None:
    start_tick(pipeline.PIPELINE, SCHEDULE, tick, explicit, maintenance_prune)


@dramatiq.actor(**RETRY_OPTIONS)
def maintenance_prune(run_id: int) -> None:
    run_stage(pipeline.PIPELINE, "prune", run_id, lambda: prune(run_id), None)


def prune(run_id: int) -> int:
    """Prune and analyze in one transaction; what was removed goes into the run record."""
    retention = timedelta(days=get_settings().raw_retention_days)
    with begin() as session:
        removed = pipeline.prune(session, utcnow(), retention)
        analyzed = pipeline.analyze(session)
        session.get_one(Run, run_id).details = {"removed": removed, "analyzed": analyzed}
    return sum(removed.values())
