"""The catch-up pass: ticks that should have run and did not are run or recorded skipped.

periodiq never replays ticks missed while it (or RabbitMQ) was down. Every minute this
actor compares each scheduled pipeline's due ticks with the run table and applies the
pipeline's policy, so downtime leaves either filled ticks or visible skips, never a hole.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import dramatiq

from actors.registry import PipelineEntry, scheduled_pipelines
from actors.ticks import enqueue_tick
from db.session import begin
from pipelines import runs
from pipelines.schedule import (
    EVERY_MINUTE,
    MAX_LOOKBACK,
    floor_minute,
    periodic_option,
    plan_catchup,
)
from taskpipes import metrics

logger = logging.getLogger("taskpipes")

# Ticks younger than this (or one period, if shorter) are the scheduler's own business:
# its message may still be on its way.
GRACE = timedelta(minutes=2)
SKIP_REASON = (
    "missed while the scheduler or broker was down; catch-up policy '{policy}' runs only the newest"
)


def catch_up_pipeline(entry: PipelineEntry, now: datetime) -> tuple[int, int]:
    """Apply one pipeline's catch-up policy. Returns (ticks enqueued, ticks skipped)."""
    until = floor_minute(now - min(GRACE, entry.schedule.period))
    with begin() as session:
        since = runs.first_tick(session, entry.name)
        if since is None:
            return 0, 0  # a new deployment starts from its first tick, it does not backfill
        recorded = runs.recorded_ticks(session, entry.name, max(since, until - MAX_LOOKBACK))
        plan = plan_catchup(entry.schedule, recorded, since, until)
        reason = SKIP_REASON.format(policy=entry.schedule.catchup)
        skipped = [t for t in plan.skip if runs.record_skipped(session, entry.name, t, reason)]
    for tick in skipped:
        metrics.run_finished(entry.name, "skipped", tick.timestamp(), now.timestamp())
        logger.warning("%s tick %s recorded as skipped: %s", entry.name, tick.isoformat(), reason)
    for tick in plan.run:
        logger.warning("%s tick %s was missed: enqueued by catch-up", entry.name, tick.isoformat())
        enqueue_tick(entry.name, entry.tick_actor, tick)
    return len(plan.run), len(skipped)


# Runs every minute; a minute after the scheduler starts, its downtime is accounted for.
@dramatiq.actor(
    periodic=periodic_option(EVERY_MINUTE),
    queue_name="default",
    max_retries=3,
    min_backoff=1_000,
    max_backoff=10_000,
    time_limit=60_000,  # far below RabbitMQ's 30-minute consumer_timeout
)
def catch_up() -> None:
    now = datetime.now(UTC)
    for entry in scheduled_pipelines():
        catch_up_pipeline(entry, now)
