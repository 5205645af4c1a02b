"""The catch-up pass: ticks that should have run and did not are run or recorded skipped.

periodiq never replays ticks missed while it (or RabbitMQ) was down. Every minute this
actor compares each scheduled pipeline's due ticks with the run table and applies the
pipeline's policy, so downtime leaves either filled ticks or visible skips, never a hole.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import dramatiq

from taskpipes.declare import clock
from taskpipes.declare.pipeline import Pipeline, Retries
from taskpipes.declare.registry import registry
from taskpipes.declare.schedule import (
    EVERY_MINUTE,
    MAX_LOOKBACK,
    floor_minute,
    periodic_option,
    plan_catchup,
)
from taskpipes.observe import metrics
from taskpipes.runtime.stages import wake_queue
from taskpipes.runtime.ticks import enqueue_ticks
from taskpipes.runtime.wiring import actor_options, make_actor
from taskpipes.store import controls, runs
from taskpipes.store.database import begin
from taskpipes.store.tables import PipelineControl

logger = logging.getLogger("taskpipes")

# Ticks younger than this (or one period, if shorter) are the scheduler's own business:
# its message may still be on its way.
GRACE = timedelta(minutes=2)
SKIP_REASON = (
    "missed while the scheduler or broker was down; catch-up policy '{policy}' runs only the newest"
)


def catch_up_pipeline(entry: Pipeline, now: datetime) -> tuple[int, int]:
    """Apply one pipeline's catch-up policy. Returns (ticks enqueued, ticks skipped).

    A paused pipeline is left alone. Once resumed, its ticks recorded `paused` count as
    missed, once: the policy picks which of them run, the others stay `paused`.
    """
    schedule = entry.schedule
    assert schedule is not None, "catch-up is for scheduled pipelines"
    until = floor_minute(now - min(GRACE, schedule.period))
    with begin() as session:
        row = session.get(PipelineControl, entry.name)
        if controls.is_paused(row):
            return 0, 0
        resumed = row is not None and row.resumed_at is not None
        since = runs.first_tick(session, entry.name)
        if since is None:
            return 0, 0  # a new deployment starts from its first tick, it does not backfill
        recorded = runs.recorded_ticks(session, entry.name, max(since, until - MAX_LOOKBACK))
        if resumed:
            recorded -= controls.paused_ticks(session, entry.name)
        plan = plan_catchup(schedule, recorded, since, until)
        reason = SKIP_REASON.format(policy=schedule.catchup)
        skipped = [t for t in plan.skip if runs.record_skipped(session, entry.name, t, reason)]
    for tick in skipped:
        metrics.tick_skipped(entry.name, "catchup")
        metrics.run_finished(entry.name, runs.SKIPPED, tick.timestamp(), now.timestamp())
        logger.warning("%s tick %s recorded as skipped: %s", entry.name, tick.isoformat(), reason)
    for tick in plan.run:
        logger.warning("%s tick %s was missed: enqueued by catch-up", entry.name, tick.isoformat())
    enqueue_ticks(entry, plan.run)
    if resumed:
        # After the sends: a failed send leaves the pause to be caught up again next pass.
        with begin() as session:
            controls.clear_pause(session, entry.name)
    return len(plan.run), len(skipped)


# 60 s is far below RabbitMQ's 30-minute consumer_timeout, and the next pass starts then.
RETRIES = Retries(max=3, min_backoff_ms=1_000, max_backoff_ms=10_000, time_limit_ms=60_000)


def catch_up() -> None:
    now = clock.now()
    for entry in registry.scheduled():
        catch_up_pipeline(entry, now)
    for entry in registry.pipelines:
        # A queue whose hand-off a crash lost (closed, then the worker died before the
        # next run's start), or that a resume or a cancel left standing, goes on.
        if wake_queue(entry) is not None:
            logger.warning("%s: a waiting run started by the catch-up pass", entry.name)


def register(broker: dramatiq.Broker) -> None:
    """Runs every minute; a minute after the scheduler starts, its downtime is accounted for."""
    options = actor_options("default", RETRIES) | {"periodic": periodic_option(EVERY_MINUTE)}
    make_actor(broker, catch_up, "catch_up", options)
