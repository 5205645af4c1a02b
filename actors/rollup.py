"""rollup actors: tick -> buckets -> trending -> pages, on their own queue."""

from __future__ import annotations

import dramatiq

from actors.stage import run_stage, stage_options
from actors.ticks import effective_schedule, start_tick
from pipelines import rollup as pipeline
from pipelines.runs import utcnow
from pipelines.schedule import periodic_option

QUEUE = "rollup"
SCHEDULE = effective_schedule(pipeline.PIPELINE, pipeline.SCHEDULE)
# Database work only: a failure is a lost connection or a lock timeout, worth a few quick
# retries. STAGE_TIME_LIMIT_MS keeps each stage far below RabbitMQ's 30-minute
# consumer_timeout, past which the message would be delivered twice.
RETRY_OPTIONS = stage_options(QUEUE, 5, 1_000, 120_000)


@dramatiq.actor(periodic=periodic_option(SCHEDULE), schedule=SCHEDULE, **RETRY_OPTIONS)
def rollup_tick(tick: str | None = None, explicit: bool = False) -> None:
    start_tick(pipeline.PIPELINE, SCHEDULE, tick, explicit, rollup_buckets)


@dramatiq.actor(**RETRY_OPTIONS)
def rollup_buckets(run_id: int) -> None:
    run_stage(
        pipeline.PIPELINE,
        "buckets",
        run_id,
        lambda: pipeline.buckets_stage(run_id, utcnow()),
        rollup_trending,
    )


@dramatiq.actor(**RETRY_OPTIONS)
def rollup_trending(run_id: int) -> None:
    run_stage(
        pipeline.PIPELINE,
        "trending",
        run_id,
        lambda: pipeline.trending_stage(run_id, utcnow()),
        rollup_pages,
    )


@dramatiq.actor(**RETRY_OPTIONS)
def rollup_pages(run_id: int) -> None:
    run_stage(
        pipeline.PIPELINE,
        "pages",
        run_id,
        lambda: pipeline.pages_stage(run_id, utcnow()),
        None,
    )
