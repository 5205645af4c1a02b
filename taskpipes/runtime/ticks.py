"""Ticks: claim the (pipeline, tick) lock, then start the pipeline's first stage; and the
explicit requests for a tick that `taskpipes run`, backfill and catch-up send."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeGuard

from dramatiq.middleware import CurrentMessage

from taskpipes.declare import clock
from taskpipes.declare.errors import PermanentError
from taskpipes.declare.pipeline import FanOut, Pipeline, Stage, tick_jitter
from taskpipes.declare.schedule import (
    EVERY_MINUTE,
    Schedule,
    floor_minute,
    floor_tick,
    matches,
    parse_tick,
)
from taskpipes.observe import metrics
from taskpipes.rabbitmq import publish
from taskpipes.runtime.current import tick_actor
from taskpipes.runtime.stages import Contested, TickClaim, run_stage, send_stage
from taskpipes.store import controls, runs
from taskpipes.store.database import begin, retrying
from taskpipes.store.tables import Run

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
    first = pipeline.stages[0]
    if quick_start(pipeline, at) and shares_tick_message(first):
        quick = TickClaim(at, message.message_id)
        try:
            run_stage(pipeline, first, 0, quick)
            return None
        except Contested:
            pass  # a duplicate, a pause, a re-run of a finished tick: the long way decides

    def claim_tick() -> tuple[runs.Claim, controls.Admission | None]:
        with begin() as session:
            claim = runs.claim(session, pipeline.name, at, message.message_id, explicit)
            if claim.run_id is None:
                return claim, None
            admission = controls.admit(
                session, pipeline, session.get_one(Run, claim.run_id), explicit
            )
            if admission.action in (controls.START, controls.WAIT) and pipeline.on_claim:
                pipeline.on_claim(session, claim.run_id, options)
        return claim, admission

    claim, admission = retrying(claim_tick)
    if claim.run_id is None or admission is None:
        logger.info(
            "%s tick %s: duplicate delivery, %s", pipeline.name, at.isoformat(), claim.reason
        )
        metrics.duplicate_tick(pipeline.name)
        return None
    return _admitted(pipeline, at, claim.run_id, admission)


def quick_start(pipeline: Pipeline, tick: datetime) -> bool:
    """A tick that can claim its run and start its first stage at once: no overlap policy
    to consult (`allow`), no jitter to wait and no options to record at the claim."""
    return (
        pipeline.overlap == "allow"
        and pipeline.on_claim is None
        and not tick_jitter(pipeline, tick)
    )


def _admitted(pipeline: Pipeline, at: datetime, run_id: int, admission: controls.Admission) -> int:
    for cancelled in admission.cancelled:
        logger.warning("%s run %s cancelled: tick %s starts", pipeline.name, cancelled, at)
    if admission.action == controls.START:
        first = pipeline.stages[0]
        delay_s = tick_jitter(pipeline, at)
        if not delay_s and shares_tick_message(first):
            run_stage(pipeline, first, run_id)
        else:
            send_stage(pipeline, first.name, run_id, delay_s or None)
    elif admission.action == controls.WAIT:
        logger.info("%s tick %s: %s", pipeline.name, at.isoformat(), admission.reason)
    else:
        assert admission.status is not None
        logger.warning(
            "%s tick %s %s: %s", pipeline.name, at.isoformat(), admission.status, admission.reason
        )
        metrics.tick_skipped(pipeline.name, NOT_RUN_REASONS[admission.status])
        metrics.run_finished(
            pipeline.name, admission.status, at.timestamp(), clock.now().timestamp()
        )
    return run_id


# The `reason` label of taskpipes_ticks_skipped for a tick closed at its claim.
NOT_RUN_REASONS = {runs.SKIPPED: "overlap", runs.PAUSED: "paused"}


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


def shares_tick_message(stage: Stage | FanOut) -> TypeGuard[Stage]:
    """A first stage that works in the tick's own message, one hand-off fewer: one that
    calls nothing and retries as its pipeline does (the tick actor's options are its own).
    A failure retries the tick message, whose claim lets the same message in again."""
    return isinstance(stage, Stage) and stage.call is None and stage.retries is None


def enqueue_tick(
    pipeline: Pipeline,
    tick: datetime,
    options: Mapping[str, object] | None = None,
) -> tuple[int, bool]:
    """Record and send an explicit request for `tick`. Returns (run id, already succeeded).

    `options` are extra keyword arguments of the tick message (JSON primitives).
    """
    return enqueue_ticks(pipeline, [tick], options)[0]


def enqueue_ticks(
    pipeline: Pipeline,
    ticks: Sequence[datetime],
    options: Mapping[str, object] | None = None,
) -> list[tuple[int, bool]]:
    """Record and send explicit requests for `ticks` (a backfill, a catch-up): (run id,
    already succeeded) for each, in order. One transaction and one broker round trip per
    batch of ticks."""
    actor = tick_actor(pipeline)
    kwargs = {"explicit": True, **(options or {})}
    outcome: dict[datetime, tuple[int, bool]] = {}
    unique = list(dict.fromkeys(ticks))
    for start in range(0, len(unique), publish.BATCH):
        batch = {
            tick: actor.message_with_options(kwargs={"tick": tick.isoformat(), **kwargs})
            for tick in unique[start : start + publish.BATCH]
        }
        with begin() as session:
            message_ids = {tick: message.message_id for tick, message in batch.items()}
            recorded = runs.record_queued_many(session, pipeline.name, message_ids)
            session.flush()
            # Sent before the records commit: a failed send rolls them back, so no run
            # waits as queued for a message that never left (catch-up or a re-run sends it
            # again). A worker that gets a message first waits on its row lock.
            publish.enqueue_all(
                actor.broker,
                [batch[t] for t, run in recorded.items() if run.message_id == message_ids[t]],
            )
        outcome |= {t: (run.id, run.status == runs.SUCCEEDED) for t, run in recorded.items()}
    return [outcome[tick] for tick in ticks]
