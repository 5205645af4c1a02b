"""Tick actors: claim the (pipeline, tick) lock, then start the pipeline's first stage."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

import dramatiq
from dramatiq.middleware import CurrentMessage

from actors.stage import hand_off
from db.session import begin
from pipelines import runs
from pipelines.schedule import Schedule, floor_tick, parse_tick
from taskpipes import metrics
from taskpipes.settings import get_settings

logger = logging.getLogger("taskpipes")


def effective_schedule(pipeline: str, default: Schedule) -> Schedule:
    """The pipeline's schedule, or TASKPIPES_SCHEDULE_<PIPELINE> when set."""
    override = get_settings().schedule_overrides.get(pipeline)
    return default if override is None else replace(default, cron=override)


def current_tick(schedule: Schedule, tick: str | None) -> datetime:
    """The tick a message is for: its argument, else periodiq's scheduled_at, floored."""
    if tick is None:
        message = CurrentMessage.get_current_message()
        tick = message.options.get("scheduled_at") if message else None
    if tick is None:
        raise ValueError("tick message carries neither a tick nor scheduled_at")
    return floor_tick(schedule.spec, parse_tick(str(tick)))


def start_tick(
    pipeline: str, schedule: Schedule, tick: str | None, explicit: bool, first: dramatiq.Actor
) -> int | None:
    """Claim the tick and hand off to `first`; a duplicate delivery is counted and dropped."""
    at = current_tick(schedule, tick)
    message = CurrentMessage.get_current_message()
    with begin() as session:
        claim = runs.claim(session, pipeline, at, message.message_id, explicit)
    if claim.run_id is None:
        logger.info("%s tick %s: duplicate delivery, %s", pipeline, at.isoformat(), claim.reason)
        metrics.duplicate_tick(pipeline)
        return None
    hand_off(first, claim.run_id)
    return claim.run_id
