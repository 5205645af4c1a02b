"""Ticks: claim the (pipeline, tick) lock, then start the pipeline's first stage; and the
explicit requests for a tick that `taskpipes run`, backfill and catch-up send."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from dramatiq.middleware import CurrentMessage
from sqlalchemy.orm import Session

from taskpipes import controls, metrics, runs
from taskpipes.database import begin
from taskpipes.errors import PermanentError
from taskpipes.models import Run
from taskpipes.pipeline import Pipeline, tick_jitter
from taskpipes.registry import registry
from taskpipes.schedule import (
    EVERY_MINUTE,
    Schedule,
    floor_minute,
    floor_tick,
    matches,
    parse_tick,
)
from taskpipes.stages import send_stage

logger = logging.getLogger("taskpipes")


def current_tick(schedule: Schedule, tick: str | None) -> datetime:
    """The tick a message is for: its argument, else periodiq's scheduled_at, floored."""
    if tick is None:
        message = CurrentMessage.get_current_message()
        tick = message.options.get("scheduled_at") if message else None
    if tick is None:
        raise ValueError("tick message carries neither a tick nor scheduled_at")
    return floor_tick(schedule.spec, parse_tick(str(tick)))


def start_tick(
    pipeline: Pipeline, tick: str | None, explicit: bool, options: Mapping[str, Any]
) -> int | None:
    """Claim the tick and hand off to the first stage; a duplicate delivery is counted and
    dropped. The pipeline's `on_claim` records the tick's options in the claiming
    transaction, so they exist before the first stage can look for them. A paused pipeline
    records the tick `paused`; the overlap policy may skip it or make it wait."""
    unknown = sorted(set(options) - set(pipeline.tick_options))
    if unknown:
        raise PermanentError(f"{pipeline.name} tick: unknown option(s) {', '.join(unknown)}")
    schedule = pipeline.schedule or EVERY_MINUTE
    if tick is None and not scheduled_minute_is_tick(schedule):
        return None  # a zoned schedule's periodiq fires every minute; most are not ticks
    at = current_tick(schedule, tick)
    message = CurrentMessage.get_current_message()
    assert message is not None, "start_tick runs inside an actor"
    with begin() as session:
        claim = runs.claim(session, pipeline.name, at, message.message_id, explicit)
        if claim.run_id is None:
            admission = None
        else:
            admission = controls.admit(
                session, pipeline, session.get_one(Run, claim.run_id), explicit
            )
            if admission.action == controls.WAIT:
                # The same tick again later, as a new message that now owns the run; sent
                # before the commit, as enqueue_tick does, so a failed send leaves nothing.
                wait_again(session, pipeline, at, claim.run_id)
            elif admission.action == controls.START and pipeline.on_claim is not None:
                pipeline.on_claim(session, claim.run_id, options)
    if claim.run_id is None or admission is None:
        logger.info(
            "%s tick %s: duplicate delivery, %s", pipeline.name, at.isoformat(), claim.reason
        )
        metrics.duplicate_tick(pipeline.name)
        return None
    return _admitted(pipeline, at, claim.run_id, admission)


def _admitted(pipeline: Pipeline, at: datetime, run_id: int, admission: controls.Admission) -> int:
    for cancelled in admission.cancelled:
        logger.warning("%s run %s cancelled: tick %s starts", pipeline.name, cancelled, at)
    if admission.action == controls.START:
        send_stage(pipeline, pipeline.stages[0].name, run_id, tick_jitter(pipeline, at) or None)
    elif admission.action == controls.WAIT:
        logger.info("%s tick %s: %s", pipeline.name, at.isoformat(), admission.reason)
    else:
        assert admission.status is not None
        logger.warning(
            "%s tick %s %s: %s", pipeline.name, at.isoformat(), admission.status, admission.reason
        )
        metrics.tick_skipped(pipeline.name, NOT_RUN_REASONS[admission.status])
        metrics.run_finished(
            pipeline.name, admission.status, at.timestamp(), runs.utcnow().timestamp()
        )
    return run_id


# The `reason` label of taskpipes_ticks_skipped for a tick closed at its claim.
NOT_RUN_REASONS = {runs.SKIPPED: "overlap", runs.PAUSED: "paused"}
# How often a tick held back by the queue overlap policy looks again.
QUEUE_WAIT_S = 2.0


def wait_again(session: Session, pipeline: Pipeline, tick: datetime, run_id: int) -> None:
    message = registry.tick_actor(pipeline).message_with_options(kwargs={"tick": tick.isoformat()})
    session.get_one(Run, run_id).message_id = message.message_id
    registry.tick_actor(pipeline).broker.enqueue(message, delay=int(QUEUE_WAIT_S * 1000))


def scheduled_minute_is_tick(schedule: Schedule) -> bool:
    """periodiq sends a zoned schedule's tick actor every minute (it knows no zones): only
    a minute that is one of the schedule's ticks goes on."""
    if schedule.timezone is None:
        return True
    message = CurrentMessage.get_current_message()
    scheduled_at = message.options.get("scheduled_at") if message else None
    if scheduled_at is None:
        return True
    return matches(schedule.spec, floor_minute(parse_tick(str(scheduled_at))))


def enqueue_tick(
    pipeline: Pipeline,
    tick: datetime,
    options: Mapping[str, object] | None = None,
) -> tuple[int, bool]:
    """Record and send an explicit request for `tick`. Returns (run id, already succeeded).

    `options` are extra keyword arguments of the tick message (JSON primitives).
    """
    tick_actor = registry.tick_actor(pipeline)
    message = tick_actor.message_with_options(
        kwargs={"tick": tick.isoformat(), "explicit": True, **(options or {})}
    )
    with begin() as session:
        existing = runs.find_run(session, pipeline.name, tick)
        if existing is not None and existing.status == runs.SUCCEEDED:
            return existing.id, True
        run_id = runs.record_queued(session, pipeline.name, tick, message.message_id)
        if session.get_one(Run, run_id).message_id == message.message_id:
            # Sent before the record commits: a failed send rolls the record back, so no
            # run waits as queued for a message that never left (catch-up or a re-run sends
            # it again). A worker that gets the message first waits on the row lock.
            tick_actor.broker.enqueue(message)
    return run_id, False
