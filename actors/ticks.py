"""Tick actors: claim the (pipeline, tick) lock, then start the pipeline's first stage."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime

import dramatiq
from dramatiq.middleware import CurrentMessage
from sqlalchemy.orm import Session

from actors.stage import hand_off
from db.models import Run
from db.session import begin
from pipelines import runs
from pipelines.schedule import Schedule, ScheduleError, floor_tick, parse_tick
from taskpipes import metrics
from taskpipes.settings import SCHEDULE_PREFIX, ConfigError, get_settings

logger = logging.getLogger("taskpipes")


def effective_schedule(pipeline: str, default: Schedule) -> Schedule:
    """The pipeline's schedule, or TASKPIPES_SCHEDULE_<PIPELINE> when set.

    A bad override stops the process at start-up, naming the variable.
    """
    override = get_settings().schedule_overrides.get(pipeline)
    if override is None:
        return default
    try:
        return replace(default, cron=override)
    except ScheduleError as exc:
        raise ConfigError(f"{SCHEDULE_PREFIX}{pipeline.upper()}: {exc}") from None


def current_tick(schedule: Schedule, tick: str | None) -> datetime:
    """The tick a message is for: its argument, else periodiq's scheduled_at, floored."""
    if tick is None:
        message = CurrentMessage.get_current_message()
        tick = message.options.get("scheduled_at") if message else None
    if tick is None:
        raise ValueError("tick message carries neither a tick nor scheduled_at")
    return floor_tick(schedule.spec, parse_tick(str(tick)))


def start_tick(
    pipeline: str,
    schedule: Schedule,
    tick: str | None,
    explicit: bool,
    first: dramatiq.Actor,
    prepare: Callable[[Session, int], None] | None = None,
) -> int | None:
    """Claim the tick and hand off to `first`; a duplicate delivery is counted and dropped.

    `prepare(session, run_id)` runs in the claiming transaction, so whatever it records
    (a run's options) exists before the first stage can look for it.
    """
    at = current_tick(schedule, tick)
    message = CurrentMessage.get_current_message()
    assert message is not None, "start_tick runs inside an actor"
    with begin() as session:
        claim = runs.claim(session, pipeline, at, message.message_id, explicit)
        if claim.run_id is not None and prepare is not None:
            prepare(session, claim.run_id)
    if claim.run_id is None:
        logger.info("%s tick %s: duplicate delivery, %s", pipeline, at.isoformat(), claim.reason)
        metrics.duplicate_tick(pipeline)
        return None
    hand_off(first, claim.run_id)
    return claim.run_id


def enqueue_tick(
    pipeline: str,
    tick_actor: dramatiq.Actor,
    tick: datetime,
    options: Mapping[str, object] | None = None,
) -> tuple[int, bool]:
    """Record and send an explicit request for `tick`. Returns (run id, already succeeded).

    `options` are extra keyword arguments of the tick message (JSON primitives).
    """
    message = tick_actor.message_with_options(
        kwargs={"tick": tick.isoformat(), "explicit": True, **(options or {})}
    )
    with begin() as session:
        existing = runs.find_run(session, pipeline, tick)
        if existing is not None and existing.status == "succeeded":
            return existing.id, True
        run_id = runs.record_queued(session, pipeline, tick, message.message_id)
        if session.get_one(Run, run_id).message_id == message.message_id:
            # Sent before the record commits: a failed send rolls the record back, so no
            # run waits as queued for a message that never left (catch-up or a re-run sends
            # it again). A worker that gets the message first waits on the row lock.
            tick_actor.broker.enqueue(message)
    return run_id, False
