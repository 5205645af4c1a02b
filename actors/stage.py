"""The glue every stage actor shares: bookkeeping, retry decisions and the hand-off.

A stage hands off to the next one inside its own body. If that send fails, the stage
fails and is retried; its work is already recorded as done, so the retry only re-sends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from db.session import begin
from pipelines import runs
from pipelines.errors import PermanentError
from taskpipes import metrics

logger = logging.getLogger("taskpipes")

# RabbitMQ redelivers a message held unacked for consumer_timeout (30 min by default), and a
# delayed message is held unacked until due; so no delay may come near it.
MAX_DELAY_S = 20 * 60
# Every stage time limit stays far below consumer_timeout for the same reason.
STAGE_TIME_LIMIT_MS = 10 * 60 * 1000


def hand_off(actor: dramatiq.Actor, run_id: int, *args: int, delay_s: float | None = None) -> None:
    """Send a stage its run id (and any further ids); the run id also rides as a message
    option. Delays are capped at MAX_DELAY_S: a longer wait is walked in steps."""
    delay = int(min(delay_s, MAX_DELAY_S) * 1000) if delay_s else None
    options: dict[str, Any] = {runs.RUN_OPTION: run_id}
    actor.send_with_options(args=(run_id, *args), delay=delay, **options)


def run_stage(
    pipeline: str,
    stage: str,
    run_id: int,
    work: Callable[[], int],
    next_stage: dramatiq.Actor | None,
    deferrable: tuple[type[Exception], ...] = (),
) -> None:
    """Do `work` once per run, record it, then hand off or close the run.

    Exceptions in `deferrable` are recorded on the stage and re-raised for the actor to
    reschedule; any other failure is final when it is permanent or the last retry.
    """
    with begin() as session:
        done = runs.stage_done(session, run_id, stage)
        if not done:
            runs.begin_stage(session, run_id, stage)
    if not done:
        _attempt(pipeline, stage, run_id, work, deferrable)
    if next_stage is not None:
        hand_off(next_stage, run_id)
    else:
        complete_run(run_id, "succeeded")


def _attempt(
    pipeline: str,
    stage: str,
    run_id: int,
    work: Callable[[], int],
    deferrable: tuple[type[Exception], ...],
) -> None:
    started = time.monotonic()
    try:
        rows = work()
    except Exception as exc:
        seconds = time.monotonic() - started
        metrics.stage_attempt(pipeline, stage, seconds, type(exc).__name__)
        error = f"{stage}: {type(exc).__name__}: {exc}"
        with begin() as session:
            runs.fail_stage(session, run_id, stage, error, seconds)
        if not isinstance(exc, deferrable) and is_final(exc):
            complete_run(run_id, "failed", error)
        raise
    seconds = time.monotonic() - started
    metrics.stage_attempt(pipeline, stage, seconds, None)
    with begin() as session:
        runs.finish_stage(session, run_id, stage, rows, seconds)


def is_final(exc: Exception) -> bool:
    """True when Dramatiq will not retry this failure."""
    if isinstance(exc, PermanentError):
        return True
    message = CurrentMessage.get_current_message()
    if message is None:
        return True
    actor = dramatiq.get_broker().get_actor(message.actor_name)
    max_retries = message.options.get("max_retries", actor.options.get("max_retries", 20))
    return message.options.get("retries", 0) >= max_retries


def complete_run(run_id: int, status: str, error: str | None = None) -> None:
    with begin() as session:
        run = runs.finish_run(session, run_id, status, error=error)
    if run is None:
        return
    logger.info("%s run %s for tick %s %s", run.pipeline, run_id, run.tick.isoformat(), status)
    metrics.run_finished(run.pipeline, status, run.tick.timestamp(), datetime.now(UTC).timestamp())


def redeliver_later(run_id: int, delay_s: float) -> None:
    """Send the current message again after `delay_s` without spending a retry."""
    message = CurrentMessage.get_current_message()
    assert message is not None, "redeliver_later runs inside an actor"
    actor = dramatiq.get_broker().get_actor(message.actor_name)
    hand_off(actor, run_id, delay_s=delay_s)


def stage_options(
    queue: str,
    max_retries: int,
    min_backoff_ms: int,
    max_backoff_ms: int,
    time_limit_ms: int = STAGE_TIME_LIMIT_MS,
) -> dict[str, Any]:
    """Every actor's options, written out: Dramatiq's defaults (20 retries, up to 7 days of
    backoff) would outlive RabbitMQ's consumer_timeout and the data's usefulness.
    A PermanentError is never retried."""
    return {
        "queue_name": queue,
        "max_retries": max_retries,
        "min_backoff": min_backoff_ms,
        "max_backoff": max_backoff_ms,
        "time_limit": time_limit_ms,
        "throws": (PermanentError,),
    }
