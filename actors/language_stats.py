"""language_stats actors: tick -> languages, on their own queue."""

from __future__ import annotations

import dramatiq
from periodiq import cron

from actors.stage import run_stage, stage_options
from actors.ticks import effective_schedule, start_tick
from pipelines import language_stats as pipeline

QUEUE = "language_stats"
SCHEDULE = effective_schedule(pipeline.PIPELINE, pipeline.SCHEDULE)
RETRY_OPTIONS = stage_options(QUEUE, 5, 1_000, 120_000)


@dramatiq.actor(periodic=cron(SCHEDULE.cron), schedule=SCHEDULE, **RETRY_OPTIONS)
def language_stats_tick(tick: str | None = None, explicit: bool = False) -> None:
    start_tick(pipeline.PIPELINE, SCHEDULE, tick, explicit, language_stats_languages)


@dramatiq.actor(**RETRY_OPTIONS)
def language_stats_languages(run_id: int) -> None:
    run_stage(
        pipeline.PIPELINE, "languages", run_id, lambda: pipeline.languages_stage(run_id), None
    )
