"""Ticks: claim the (pipeline, tick) lock, then start the pipeline's first stage; and the
explicit requests for a tick that `taskpipes run`, backfill and catch-up send."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from dramatiq.middleware import CurrentMessage

from taskpipes import metrics, runs
from taskpipes.database import begin, retrying
from taskpipes.errors import PermanentError
from taskpipes.models import Run
from taskpipes.pipeline import Pipeline
from taskpipes.registry import registry
from taskpipes.schedule import EVERY_MINUTE, Schedule, floor_tick, parse_tick
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
    transaction, so they exist before the first stage can look for them."""
    unknown = sorted(set(options) - set(pipeline.tick_options))
    if unknown:
        raise PermanentError(f"{pipeline.name} tick: unknown option(s) {', '.join(unknown)}")
    at = current_tick(pipeline.schedule or EVERY_MINUTE, tick)
    message = CurrentMessage.get_current_message()
    assert message is not None, "start_tick runs inside an actor"

    def claim_tick() -> runs.Claim:
        with begin() as session:
            claim = runs.claim(session, pipeline.name, at, message.message_id, explicit)
            if claim.run_id is not None and pipeline.on_claim is not None:
                pipeline.on_claim(session, claim.run_id, options)
        return claim

    claim = retrying(claim_tick)
    if claim.run_id is None:
        logger.info(
            "%s tick %s: duplicate delivery, %s", pipeline.name, at.isoformat(), claim.reason
        )
        metrics.duplicate_tick(pipeline.name)
        return None
    send_stage(pipeline, pipeline.stages[0].name, claim.run_id)
    return claim.run_id


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


def enqueue_ticks(pipeline: Pipeline, ticks: list[datetime]) -> list[int]:
    """Record and send explicit requests for many ticks (a backfill); their run ids."""
    return [enqueue_tick(pipeline, tick)[0] for tick in ticks]
