"""Run one stage message: one transaction for the work and the record that it is done.

```
message(run_id) -> transaction: take the stage's record under its row lock
                                (done already, or the run cancelled? -> skip the work)
                                run(ctx), record done (and close the run after the last)
                -> hand off to the next stage (inside the actor: a failed send is a retry)
```
Taking the record before the stage's code runs is what makes a stage's writes happen once
even when two copies of its message run at the same time: the second waits on the lock,
then finds the stage done (taskpipes.store.records). On PostgreSQL the kit's part costs two
round trips: the take, with BEGIN, and the end, with COMMIT.

A stage with a `call` part takes two transactions instead: `read` + the attempt's count,
then the call with none open, then `run` + the record, which takes the lock again and
re-checks. Two copies may both call (the outside call is at least once); a crash before the
last commit repeats the call, never the write; a crash after it repeats only the hand-off.

A tick message whose first stage works in it claims its run in the stage's first round
trip (`Attempt.claim`); when anything stands in the way of that claim, the tick goes the
long way (taskpipes.runtime.ticks).

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

from taskpipes.declare.errors import PermanentError
from taskpipes.declare.pipeline import MAX_DELAY_S, Call, Context, FanOut, Pipeline, Stage
from taskpipes.declare.registry import registry
from taskpipes.observe import metrics
from taskpipes.store import controls, records, runs
from taskpipes.store.database import begin, get_engine, retrying
from taskpipes.store.runs import FAILED, FINISHED, SUCCEEDED
from taskpipes.store.tables import Run
from taskpipes.store.transaction import Transaction

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
    send_to(pipeline, pipeline.stage(stage_name), run_id, delay_s)


def send_to(
    pipeline: Pipeline, stage: Stage | FanOut, run_id: int, delay_s: float | None = None
) -> None:
    actor = dramatiq.get_broker().get_actor(pipeline.entry_actor(stage))
    hand_off(actor, run_id, delay_s=delay_s)


@dataclass(frozen=True)
class TickClaim:
    """A tick message's claim of its run, made in its first stage's first round trip."""

    tick: datetime
    message_id: str


class Contested(Exception):
    """The tick's quick claim found something in its way: the long way decides."""


class RunMissing(Exception):
    """A stage message names a run that is not recorded (pruned by maintenance)."""


@dataclass
class Attempt:
    """One delivery of a stage message, as it goes."""

    pipeline: Pipeline
    stage: Stage
    run_id: int
    started: float
    # A tick message's claim, still to be made with the first stage's take.
    claim: TickClaim | None = None
    # The attempt is already counted on its stage row (a calling stage's first transaction).
    counted: bool = False
    closed: records.Closed | Run | None = None
    # The run's tick, read with the stage's record.
    tick: datetime | None = None
    # The stage record this delivery took (its id), once taken.
    stage_id: int | None = None
    # The run was cancelled (`taskpipes cancel`): this stage and the later ones do nothing.
    cancelled: bool = False

    @property
    def last(self) -> bool:
        return self.pipeline.after(self.stage.name) is None

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def context(self, opened: Session | Callable[[], Session], answer: Any = None) -> Context:
        if self.tick is None:
            session = opened if isinstance(opened, Session) else opened()
            self.tick = session.get_one(Run, self.run_id).tick
        return Context(
            self.pipeline.name,
            self.stage.name,
            self.run_id,
            self.tick,
            runs.utcnow(),
            opened,
            answer,
        )


def run_stage(
    pipeline: Pipeline, stage: Stage, run_id: int, claim: TickClaim | None = None
) -> None:
    """Do the stage once per run and record it, then hand off or close the run.

    Exceptions in `stage.defer_on` send the stage (or the one `stage.later` names) again
    later; any other failure is final when it is permanent or the last retry. With a
    `claim`, the tick message's own first stage: its run is claimed first (`run_id` is a
    placeholder until then), and Contested is raised when that quick claim cannot be made.
    """
    attempt = Attempt(pipeline, stage, run_id, time.monotonic(), claim)
    try:
        worked = retrying(lambda: _perform(attempt))
    except Contested:
        raise
    except RunMissing:
        logger.error(
            "%s stage %s: run %s is not recorded (pruned?); message dropped",
            pipeline.name,
            stage.name,
            run_id,
        )
        return
    except stage.defer_on as exc:
        metrics.stage_attempt(pipeline.name, stage.name, attempt.seconds, type(exc).__name__)
        _defer(attempt, exc)
        return
    except Exception as exc:
        metrics.stage_attempt(pipeline.name, stage.name, attempt.seconds, type(exc).__name__)
        _fail(attempt, exc)
        raise
    if attempt.cancelled:
        logger.info(
            "%s run %s is cancelled: stage %s not run", pipeline.name, attempt.run_id, stage.name
        )
        wake_queue(pipeline)  # its stage that was running has finished: the next may start
        return
    if worked:
        metrics.stage_attempt(pipeline.name, stage.name, attempt.seconds, None)
    following = pipeline.after(stage.name)
    if following is not None:
        send_to(pipeline, following, attempt.run_id)
    elif attempt.closed is not None:
        run_closed(attempt.closed)


def _perform(attempt: Attempt) -> bool:
    """The stage's work and its record; False when it is not this delivery's to do."""
    stage = attempt.stage
    answer = None
    if stage.call is not None:
        with Transaction(get_engine()) as tx:
            if not _take(tx, attempt):
                return False
            attempt.counted = True
            ctx = attempt.context(lambda: tx.session)
            asked = stage.read(ctx) if stage.read is not None else None
            tx.commit_all()
        answer = stage.call(Call(ctx.pipeline, ctx.stage, ctx.run_id, ctx.tick, ctx.now, asked))
    with Transaction(get_engine()) as tx:
        if not _take(tx, attempt):
            return False
        rows = stage.run(attempt.context(lambda: tx.session, answer)) or 0
        _end(tx, attempt, rows)
    return True


def _take(tx: Transaction, attempt: Attempt) -> bool:
    """Take the stage's record under its lock; True when this delivery is to do the stage.
    A redelivered last stage whose record is done closes its run if it is still open (a
    resumed run)."""
    now = runs.utcnow()
    if attempt.claim is not None:
        return _claim_and_take(tx, attempt, attempt.claim, now)
    taken = records.take_stage(
        tx, attempt.run_id, attempt.stage.name, now, count=not attempt.counted
    )
    if taken is None:
        raise RunMissing()
    attempt.tick, attempt.stage_id = taken.tick, taken.stage_id
    if taken.run_status == runs.CANCELLED:
        attempt.cancelled = True
        tx.commit_all()
        return False
    if taken.stage_id is not None:
        return True
    if attempt.last and taken.run_status not in FINISHED:
        attempt.closed = records.close_run(tx, attempt.run_id, now)
        _start_next_in(tx, attempt.pipeline)
    tx.commit_all()
    return False


def _claim_and_take(tx: Transaction, attempt: Attempt, claim: TickClaim, now: datetime) -> bool:
    run_id, stage_id = records.claim_and_take(
        tx, attempt.pipeline.name, claim.tick, claim.message_id, attempt.stage.name, now
    )
    if run_id is None:
        raise Contested()
    # Claimed and committed: from here on (a retry included) it is any stage's attempt.
    attempt.claim = None
    attempt.run_id, attempt.tick, attempt.stage_id = run_id, claim.tick, stage_id
    if stage_id is None:  # a redelivered tick whose first stage is done
        tx.commit_all()
        return False
    return True


def _end(tx: Transaction, attempt: Attempt, rows: int) -> None:
    """Record the stage done, close the run after the last stage, and commit."""
    assert attempt.stage_id is not None
    queue = attempt.last and attempt.pipeline.overlap == "queue"
    attempt.closed = records.end_stage(
        tx,
        attempt.run_id,
        attempt.stage_id,
        rows,
        attempt.seconds,
        runs.utcnow(),
        close=attempt.last,
        commit=not queue,
    )
    if queue:
        # Even when another closer was first (a cancel): the next run starts only if none runs.
        _start_next_in(tx, attempt.pipeline)
        tx.commit_all()


def _start_next_in(tx: Transaction, pipeline: Pipeline) -> None:
    if pipeline.overlap == "queue":
        start_next(tx.session, pipeline)


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
        send_to(pipeline, pipeline.stages[0], run_id)
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


def _record_failure(session: Session, attempt: Attempt, error: str) -> None:
    if not attempt.counted:
        runs.begin_stage(session, attempt.run_id, attempt.stage.name)
    runs.fail_stage(session, attempt.run_id, attempt.stage.name, error, attempt.seconds)


def _fail(attempt: Attempt, exc: Exception) -> None:
    if attempt.claim is not None:
        return  # it failed before its run was claimed: nothing to record it on
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
    if attempt.claim is not None:
        raise exc  # it failed before its run was claimed: the tick message is retried
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


def run_closed(run: records.Closed | Run) -> None:
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
