"""Run one stage message: one transaction for the work and the record that it is done.

```
message(run_id) -> transaction: stage already done? -> skip the work
                                run(ctx), record done (and close the run after the last)
                -> hand off to the next stage (inside the actor: a failed send is a retry)
```
A stage with a `call` part takes two transactions instead: `read` + the attempt's count,
then the call with none open, then `run` + the record. A crash before the last commit
repeats the call, never the write; a crash after it repeats only the hand-off.

Closing a run of a pipeline whose overlap policy is `queue` also starts its oldest waiting
run, in the closing transaction, with that run's first stage sent before the commit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage
from sqlalchemy.orm import Session

from taskpipes import controls, metrics, runs
from taskpipes.database import begin, retrying
from taskpipes.errors import PermanentError
from taskpipes.models import Run
from taskpipes.pipeline import MAX_DELAY_S, Call, Context, Pipeline, Stage
from taskpipes.registry import registry
from taskpipes.runs import FAILED, SUCCEEDED

logger = logging.getLogger("taskpipes")


def hand_off(actor: dramatiq.Actor, run_id: int, *args: int, delay_s: float | None = None) -> None:
    """Send a stage its run id (and any further ids); the run id also rides as a message
    option. Delays are capped at MAX_DELAY_S: a longer wait is walked in steps."""
    delay = int(min(delay_s, MAX_DELAY_S) * 1000) if delay_s else None
    options: dict[str, Any] = {runs.RUN_OPTION: run_id}
    actor.send_with_options(args=(run_id, *args), delay=delay, **options)


def send_stage(
    pipeline: Pipeline, stage_name: str, run_id: int, delay_s: float | None = None
) -> None:
    name = pipeline.entry_actor(pipeline.stage(stage_name))
    hand_off(dramatiq.get_broker().get_actor(name), run_id, delay_s=delay_s)


@dataclass
class Attempt:
    """One delivery of a stage message, as it goes."""

    pipeline: Pipeline
    stage: Stage
    run_id: int
    started: float
    # The attempt is already counted on its stage row (a calling stage's first transaction).
    counted: bool = False
    closed: Run | None = None
    # The run's tick, once read (the first query of the attempt reads it with the status).
    tick: datetime | None = None
    # The run was cancelled (`taskpipes cancel`): this stage and the later ones do nothing.
    cancelled: bool = False

    @property
    def last(self) -> bool:
        return self.pipeline.after(self.stage.name) is None

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def context(self, session: Session, answer: Any = None) -> Context:
        if self.tick is None:
            self.tick = session.get_one(Run, self.run_id).tick
        return Context(
            self.pipeline.name,
            self.stage.name,
            self.run_id,
            self.tick,
            runs.utcnow(),
            session,
            answer,
        )


def run_stage(pipeline: Pipeline, stage: Stage, run_id: int) -> None:
    """Do the stage once per run and record it, then hand off or close the run.

    Exceptions in `stage.defer_on` send the stage (or the one `stage.later` names) again
    later; any other failure is final when it is permanent or the last retry.
    """
    attempt = Attempt(pipeline, stage, run_id, time.monotonic())
    try:
        worked = retrying(lambda: _perform(attempt))
    except stage.defer_on as exc:
        metrics.stage_attempt(pipeline.name, stage.name, attempt.seconds, type(exc).__name__)
        _defer(attempt, exc)
        return
    except Exception as exc:
        metrics.stage_attempt(pipeline.name, stage.name, attempt.seconds, type(exc).__name__)
        _fail(attempt, exc)
        raise
    if attempt.cancelled:
        logger.info("%s run %s is cancelled: stage %s not run", pipeline.name, run_id, stage.name)
        wake_queue(pipeline)  # its stage that was running has finished: the next may start
        return
    if worked:
        metrics.stage_attempt(pipeline.name, stage.name, attempt.seconds, None)
    following = pipeline.after(stage.name)
    if following is not None:
        send_stage(pipeline, following.name, run_id)
    elif attempt.closed is not None:
        run_closed(attempt.closed)


def _perform(attempt: Attempt) -> bool:
    """The stage's work and its record; False when an earlier delivery already did it."""
    stage = attempt.stage
    answer = None
    if stage.call is not None:
        with begin() as session:
            if _skip_if_done(session, attempt):
                return False
            runs.begin_stage(session, attempt.run_id, stage.name)
            attempt.counted = True
            ctx = attempt.context(session)
            asked = stage.read(ctx) if stage.read is not None else None
        answer = stage.call(Call(ctx.pipeline, ctx.stage, ctx.run_id, ctx.tick, ctx.now, asked))
    with begin() as session:
        if _skip_if_done(session, attempt):
            return False
        rows = stage.run(attempt.context(session, answer)) or 0
        if attempt.counted:
            runs.finish_stage(session, attempt.run_id, stage.name, rows, attempt.seconds)
        else:
            runs.stage_succeeded(session, attempt.run_id, stage.name, rows, attempt.seconds)
        if attempt.last:
            _close(session, attempt, SUCCEEDED)
    return True


def _close(session: Session, attempt: Attempt, status: str, error: str | None = None) -> None:
    """Close the run in the attempt's transaction; a `queue` pipeline's next waiting run
    starts in it too, its first stage sent before the commit, so the hand-off is never lost
    (a failed send rolls the close back and the stage is retried)."""
    attempt.closed = runs.finish_run(session, attempt.run_id, status, error=error)
    # Even when another closer was first (a cancel): the next run starts only if none runs.
    start_next(session, attempt.pipeline)


def start_next(session: Session, pipeline: Pipeline) -> int | None:
    """Start the next waiting run of a `queue` pipeline, if one may start now
    (controls.next_waiting); sends its first stage inside the caller's transaction."""
    run_id = controls.next_waiting(session, pipeline)
    if run_id is not None:
        logger.info("%s run %s: its turn in the queue", pipeline.name, run_id)
        send_stage(pipeline, pipeline.stages[0].name, run_id)
    return run_id


def wake_queue(pipeline: Pipeline) -> int | None:
    """start_next in a transaction of its own, for a run closed elsewhere (the crash guard,
    a fan-out, a cancel, the catch-up pass). No transaction for other policies."""
    if pipeline.overlap != "queue":
        return None
    with begin() as session:
        return start_next(session, pipeline)


def wake_queue_of(pipeline_name: str) -> None:
    """wake_queue by the pipeline's name (a closed run names its pipeline)."""
    try:
        pipeline = registry.get(pipeline_name)
    except KeyError:
        return  # a run of a pipeline this process does not declare
    wake_queue(pipeline)


def _skip_if_done(session: Session, attempt: Attempt) -> bool:
    """True when the stage is recorded done (a redelivery; the last one still closes) or
    the run is cancelled (a stage message sent or delayed before the cancel). One query
    reads the run's tick and status with the stage's status."""
    attempt.tick, run_status, status = runs.tick_and_stage(
        session, attempt.run_id, attempt.stage.name
    )
    if run_status == runs.CANCELLED:
        attempt.cancelled = True
        return True
    if status != SUCCEEDED:
        return False
    if attempt.last:
        _close(session, attempt, SUCCEEDED)
    return True


def _record_failure(session: Session, attempt: Attempt, error: str) -> None:
    if not attempt.counted:
        runs.begin_stage(session, attempt.run_id, attempt.stage.name)
    runs.fail_stage(session, attempt.run_id, attempt.stage.name, error, attempt.seconds)


def _fail(attempt: Attempt, exc: Exception) -> None:
    error = f"{attempt.stage.name}: {type(exc).__name__}: {exc}"
    with begin() as session:
        _record_failure(session, attempt, error)
        if is_final(exc):
            _close(session, attempt, FAILED, error)
    if attempt.closed is not None:
        run_closed(attempt.closed)


def _defer(attempt: Attempt, exc: Exception) -> None:
    """Record the deferral and send the stage again later, without spending a retry; the
    stage's `later` may give up (PermanentError), which fails the run."""
    stage = attempt.stage
    with begin() as session:
        _record_failure(session, attempt, f"{stage.name}: {type(exc).__name__}: {exc}")
        try:
            later = stage.later(attempt.context(session), exc)
        except PermanentError as gave_up:
            _close(session, attempt, FAILED, f"{stage.name}: {gave_up}")
        else:
            again = later.stage or stage.name
            if again != stage.name:
                runs.reopen_stage(session, attempt.run_id, again)
    if attempt.closed is not None:
        run_closed(attempt.closed)
    else:
        send_stage(attempt.pipeline, again, attempt.run_id, later.delay_s)


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
    """Close a run in a transaction of its own (crash guard, fan-outs, the runner)."""
    with begin() as session:
        run = runs.finish_run(session, run_id, status, error=error)
    if run is not None:
        run_closed(run)
        wake_queue_of(run.pipeline)


def run_closed(run: Run) -> None:
    """Log and count a run this process just closed (after its transaction committed)."""
    logger.info("%s run %s for tick %s %s", run.pipeline, run.id, run.tick.isoformat(), run.status)
    metrics.run_finished(
        run.pipeline, run.status, run.tick.timestamp(), datetime.now(UTC).timestamp()
    )


def close_fan_out(run_id: int, stage: str, done: Callable[[Session], int | None]) -> bool:
    """Close a fan-out stage and its run once `done(session)` says every part is done
    (rows written) rather than None; any part may ask, often. True when this call closed."""
    with begin() as session:
        run = session.get(Run, run_id)
        rows = None if run is None or run.status != runs.RUNNING else done(session)
        if rows is None:
            return False
        runs.finish_stage_once(session, run_id, stage, rows)
        closed = runs.finish_run(session, run_id, SUCCEEDED)
    if closed is not None:
        run_closed(closed)
        wake_queue_of(closed.pipeline)
    return closed is not None


def fail_fan_out(run_id: int, stage: str, error: str, seconds: float) -> None:
    """Record a fan-out part's final failure on its stage, and fail the run with it."""
    with begin() as session:
        runs.fail_stage(session, run_id, stage, error, seconds)
        closed = runs.finish_run(session, run_id, FAILED, error=error)
    if closed is not None:
        run_closed(closed)
        wake_queue_of(closed.pipeline)
