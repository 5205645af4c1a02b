"""Run one stage message: one transaction for the work and the record that it is done.

```
message(run_id) -> transaction: take the stage's record under its row lock
                                (done already, or the run cancelled? -> skip the work)
                                output = work(ctx), record done with its output
                                (and close the run after the last)
                -> hand off to the next stage (inside the actor: a failed send is a retry)
```
Taking the record before the stage's code runs is what makes a stage's writes happen once
even when two copies of its message run at the same time: the second waits on the lock,
then finds the stage done (taskpipes.store.stage_records). On PostgreSQL the kit's part costs two
round trips: the take, with BEGIN, and the end, with COMMIT.

The stage's return value is its output: checked (JSON, at most MAX_OUTPUT_BYTES) and
written by the end statement, in the same transaction as the stage's writes. The next
stage's take reads it back as that stage's `ctx.input` (the first stage's input is the
run's options). A redelivered stage found done is not run: the next stage reads the output
recorded by the delivery that did it.

An outside stage (`outside=True`) takes two transactions instead: the take + the
attempt's count, then its work with none open, then the record with its output, which
takes the lock again and re-checks. Two copies may both do the work (at least once); only
one output is recorded, and the next stage works from that one, exactly once.

A tick message whose first stage works in it claims its run in the stage's first round
trip (`Attempt.claim`); when anything stands in the way of that claim, the tick goes the
long way (taskpipes.runtime.ticks).

Closing a run of a pipeline whose overlap policy is `queue` also starts its oldest waiting
run, in the closing transaction, with that run's first stage sent before the commit.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage
from sqlalchemy.orm import Session

from taskpipes.declare.errors import PermanentError
from taskpipes.declare.pipeline import (
    MAX_DELAY_S,
    MAX_OUTPUT_BYTES,
    Context,
    FanOut,
    Pipeline,
    Stage,
)
from taskpipes.declare.registry import registry
from taskpipes.observe import metrics
from taskpipes.store import controls, runs
from taskpipes.store import stage_records as records
from taskpipes.store.database import begin, get_engine, retrying
from taskpipes.store.runs import FAILED, FINISHED, SUCCEEDED
from taskpipes.store.tables import Run
from taskpipes.store.transaction import Transaction

logger = logging.getLogger("taskpipes")
# Dramatiq's own cap on a retry's backoff (7 days).
MAX_BACKOFF_MS = 7 * 24 * 3600 * 1000


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
    # The tick message's options: the first stage's input, kept with the run.
    options: Mapping[str, Any] = field(default_factory=dict)


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
    # The attempt is already counted on its stage row (an outside stage's first transaction).
    counted: bool = False
    closed: records.Closed | Run | None = None
    # The run's tick, read with the stage's record.
    tick: datetime | None = None
    # The stage record this delivery took (its id), once taken.
    stage_id: int | None = None
    # The run was cancelled (`taskpipes cancel`): this stage and the later ones do nothing.
    cancelled: bool = False
    # The stage's input, read with its record.
    input: Any = None
    # Rows written by table, counted once the stage has committed.
    written: dict[str, int] | None = None

    @property
    def last(self) -> bool:
        return self.pipeline.after(self.stage.name) is None

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def context(self, opened: Session | Callable[[], Session] | None) -> Context:
        if self.tick is None:
            assert opened is not None, "an outside stage's tick is read by its take"
            session = opened if isinstance(opened, Session) else opened()
            self.tick = session.get_one(Run, self.run_id).tick
        return Context(
            self.pipeline.name,
            self.stage.name,
            self.run_id,
            self.tick,
            runs.utcnow(),
            opened,
            self.input,
        )


class OutputRefused(PermanentError):
    """A stage returned what cannot be handed on: not JSON, or over MAX_OUTPUT_BYTES."""


def encoded(stage: Stage, output: Any) -> str | None:
    """The stage's output as the JSON its record keeps; None for None."""
    if output is None:
        return None
    try:
        text = json.dumps(output, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise OutputRefused(
            f"stage {stage.name!r} returned what is not JSON ({exc}); a stage's output "
            f"must be JSON of at most {MAX_OUTPUT_BYTES} bytes"
        ) from None
    size = len(text.encode())
    if size > MAX_OUTPUT_BYTES:
        raise OutputRefused(
            f"stage {stage.name!r} returned {size} bytes of JSON, over the "
            f"{MAX_OUTPUT_BYTES}-byte limit on a stage's output: write bulk data to a "
            "table and return its key"
        )
    return text


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
        for table, rows in (attempt.written or {}).items():
            metrics.rows_written(table, rows)
    following = pipeline.after(stage.name)
    if following is not None:
        send_to(pipeline, following, attempt.run_id)
    elif attempt.closed is not None:
        run_closed(attempt.closed)


def _perform(attempt: Attempt) -> bool:
    """The stage's work and its record; False when it is not this delivery's to do."""
    stage = attempt.stage
    if stage.outside:
        return _perform_outside(attempt)
    with Transaction(get_engine()) as tx:
        if not _take(tx, attempt):
            return False
        ctx = attempt.context(lambda: tx.session)
        output = encoded(stage, stage.work(ctx))
        _end(tx, attempt, ctx, output)
    return True


def _perform_outside(attempt: Attempt) -> bool:
    """An outside stage: counted and committed, worked with no transaction open, then
    recorded under the lock again (a copy that recorded first wins; its output is the
    one handed on)."""
    with Transaction(get_engine()) as tx:
        if not _take(tx, attempt):
            return False
        attempt.counted = True
        tx.commit_all()
    ctx = attempt.context(None)
    output = encoded(attempt.stage, attempt.stage.work(ctx))
    with Transaction(get_engine()) as tx:
        if not _take(tx, attempt):
            return False
        _end(tx, attempt, ctx, output)
    return True


def _take(tx: Transaction, attempt: Attempt) -> bool:
    """Take the stage's record under its lock; True when this delivery is to do the stage.
    A redelivered last stage whose record is done closes its run if it is still open (a
    resumed run)."""
    now = runs.utcnow()
    if attempt.claim is not None:
        return _claim_and_take(tx, attempt, attempt.claim, now)
    previous = attempt.pipeline.before(attempt.stage.name)
    taken = records.take_stage(
        tx, attempt.run_id, attempt.stage.name, now, not attempt.counted, previous
    )
    if taken is None:
        raise RunMissing()
    attempt.tick, attempt.stage_id, attempt.input = taken.tick, taken.stage_id, taken.input
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
    options = json.dumps(claim.options) if claim.options else None
    run_id, stage_id = records.claim_and_take(
        tx, attempt.pipeline.name, claim.tick, claim.message_id, attempt.stage.name, now, options
    )
    if run_id is None:
        raise Contested()
    # Claimed and committed: from here on (a retry included) it is any stage's attempt.
    attempt.claim = None
    attempt.run_id, attempt.tick, attempt.stage_id = run_id, claim.tick, stage_id
    attempt.input = dict(claim.options)
    if stage_id is None:  # a redelivered tick whose first stage is done
        tx.commit_all()
        return False
    return True


def _end(tx: Transaction, attempt: Attempt, ctx: Context, output: str | None) -> None:
    """Record the stage done with its output and rows, close the run after the last
    stage, and commit."""
    assert attempt.stage_id is not None
    queue = attempt.last and attempt.pipeline.overlap == "queue"
    attempt.closed = records.end_stage(
        tx,
        attempt.run_id,
        attempt.stage_id,
        ctx.rows_written,
        attempt.seconds,
        runs.utcnow(),
        close=attempt.last,
        commit=not queue,
        output=output,
    )
    if queue:
        # Even when another closer was first (a cancel): the next run starts only if none runs.
        _start_next_in(tx, attempt.pipeline)
        tx.commit_all()
    attempt.written = ctx.written


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
    turn = attempt_of(exc)
    logger.warning("%s", failed_attempt_line(attempt, turn, exc))
    with begin() as session:
        _record_failure(session, attempt, error)
        if turn.final:
            _close(session, attempt, FAILED, error)
    if attempt.closed is not None:
        run_closed(attempt.closed)


@dataclass(frozen=True)
class Turn:
    """Which attempt of its message a failure ended, and what Dramatiq does next."""

    number: int
    of: int
    final: bool
    # Fails at once: a PermanentError or one of the actor's `throws` (the stage's fail_fast).
    fast: bool = False
    # The next attempt's backoff, from-to (Dramatiq adds jitter), in milliseconds.
    backoff_ms: tuple[int, int] = (0, 0)


def attempt_of(exc: Exception) -> Turn:
    """Turn of the current message's failure with `exc` (the last when not in an actor)."""
    message = CurrentMessage.get_current_message()
    if message is None:
        return Turn(1, 1, True, isinstance(exc, PermanentError))
    actor = dramatiq.get_broker().get_actor(message.actor_name)
    options = {**actor.options, **message.options}
    retries: int = options.get("retries", 0)
    max_retries: int = options.get("max_retries", 20)
    fast = isinstance(exc, (PermanentError, *(options.get("throws") or ())))
    backoff = min(
        options.get("min_backoff", 15_000) * 2**retries, options.get("max_backoff", MAX_BACKOFF_MS)
    )
    final = fast or retries >= max_retries
    return Turn(retries + 1, max_retries + 1, final, fast, (backoff // 2, backoff))


def failed_attempt_line(attempt: Attempt, turn: Turn, exc: Exception) -> str:
    """One line per failed attempt: where, which attempt, the cause, what comes next."""
    where = f"{attempt.pipeline.name} stage {attempt.stage.name}, run {attempt.run_id}"
    cause = f"{type(exc).__name__}: {exc}"
    if turn.fast:
        then = f"{type(exc).__name__} is not retried: the run fails"
    elif turn.final:
        then = "no attempt left: the run fails"
    else:
        low, high = (f"{ms / 1000:g}" for ms in turn.backoff_ms)
        then = f"next attempt in {low}-{high} s"
    return f"{where}: attempt {turn.number} of {turn.of} failed: {cause}; {then}"


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
    return attempt_of(exc).final


def complete_run(run_id: int, status: str, error: str | None = None) -> None:
    """Close a run in a transaction of its own (crash guard, fan-outs, the runner)."""
    with begin() as session:
        run = runs.finish_run(session, run_id, status, error=error)
    closed_apart(run)


def closed_apart(run: records.Closed | Run | None) -> None:
    """After a run closed in a transaction of its own (not a stage's, whose close starts
    the next queued run in it): log and count it, and start its pipeline's next waiting
    run. None: this call did not close it, someone else did (and announces it)."""
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
    closed_apart(closed)
    return closed is not None


def fail_fan_out(run_id: int, stage: str, error: str, seconds: float) -> None:
    """Record a fan-out part's final failure on its stage, and fail the run with it."""
    with begin() as session:
        runs.fail_stage(session, run_id, stage, error, seconds)
        closed = runs.finish_run(session, run_id, FAILED, error=error)
    closed_apart(closed)
