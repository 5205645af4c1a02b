"""Exactly once, explored: a hypothesis state machine drives runs of four pipelines (one
per overlap policy) through random interleavings, on PostgreSQL, with real threads.

The machine plays the broker. Every message the kit sends lands on a private StubBroker
that no worker consumes; the machine keeps them as pending, and each step delivers one of
them the way a worker would (the actor's function with CurrentMessage set), or does
something an operator or a failure would:

- a delivery, or copies of a stage message delivered at once on threads of their own (a
  requeue after a dropped connection while the first worker still works): the copy inside
  a stage holds its transaction open until the others are inside too or wait on a lock
  (tests.copies), so they overlap deterministically, both with the race (all inside:
  duplicate writes) and without it (the others wait, then skip);
- a delivery that goes wrong: the worker dies after the stage's writes, before its commit
  (the stage raises, the writes roll back, the message comes again); the `wait` stage
  defers (`defer_on`, `later`: a delayed message comes back); the worker dies after the
  commit, before the hand-off left (the send raises, so it is lost) or before its ack: the
  message comes again;
- a tick of a pipeline, whose overlap policy then applies; `taskpipes.store.controls.cancel` of
  an unfinished run.

After every step no stage of any run has written twice. After the last step the machine
delivers what is still pending, then checks every run: closed, with a status its story
allows, its stages written exactly once when it succeeded, and counted closed once.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage, Middleware, MiddlewareError, default_middleware
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from prometheus_client import REGISTRY
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select, text

from db import schema as migrate
from taskpipes import Context, Later, Pipeline, Retries, Stage, testing
from taskpipes.declare import clock
from taskpipes.declare.pipeline import OVERLAP_POLICIES
from taskpipes.runtime.wiring import pipeline_actors
from taskpipes.store import controls, runs
from taskpipes.store.database import begin, get_engine, reading
from taskpipes.store.tables import Run
from tests import services
from tests.copies import Overlap

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)
QUEUE = "exactly_once"
# The budget in `make test`. An example costs about half a second of the kit's
# transactions, so shrinking, which hypothesis may run for five minutes, is left out: a
# failure prints its steps in full. Add Phase.shrink to see a minimal one; before the fix
# it was: tick, deliver the tick, deliver two copies of the next stage's message at once.
BUDGET = settings(
    max_examples=25,
    stateful_step_count=20,
    deadline=None,
    derandomize=True,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow],
)
# Deliveries the final drain may take before it calls the run stuck.
MAX_DRAIN = 400
# A run's story may end in these statuses beside succeeded (and only for that reason).
CANCELLED_BY_POLICY = "overlap policy cancel_previous"

WRITES = Table(
    "machine_writes",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, nullable=False),
    Column("stage", String(40), nullable=False),
)


class WorkerDied(Exception):
    """The worker died inside a stage, after its writes: they roll back."""


class HandOffLost(MiddlewareError):
    """The worker died after its commit, before the hand-off left (Dramatiq lets a
    MiddlewareError out of `before_enqueue`, so the send raises in the stage's actor)."""


class NotYet(Exception):
    """The `wait` stage's data is not there yet: try again later."""


@dataclass(frozen=True)
class Plan:
    """What happens to one delivery: a fault, or the group of copies it belongs to."""

    fault: str | None = None
    group: int | None = None
    copies: int = 1


# What can go wrong with a delivery: the worker dies after the stage's writes, before its
# commit; the `wait` stage defers; the worker dies after the commit, before the hand-off
# left (so it is lost), or before its ack (so nothing is lost): the message comes again.
FAULTS = ("crash", "defer", "lose_hand_off", "ack_lost")
AFTER_COMMIT = ("lose_hand_off", "ack_lost")

PLAN = threading.local()
OVERLAP = Overlap()
# Groups of copies are numbered across examples: the count of copies inside is per group.
GROUPS = count()


def plan() -> Plan:
    return getattr(PLAN, "current", None) or Plan()


def write(ctx: Context) -> int:
    """Every stage: defer if asked (the `wait` stage), write one row, hold with the other
    copies of its group, die if asked."""
    current = plan()
    if current.fault == "defer" and ctx.stage == "wait":
        raise NotYet("not yet")
    if ctx.stage == "wait":  # the outside stage's recorded answer is handed on
        assert ctx.input == f"answer for run {ctx.run_id}", ctx.input
    ctx.session.execute(insert(WRITES).values(run_id=ctx.run_id, stage=ctx.stage))
    if current.group is not None:
        OVERLAP.hold(ctx.session, current.group, current.copies)
    if current.fault == "crash":
        raise WorkerDied("killed after its writes")
    return 1


def call_outside(ctx: Context) -> str:
    return f"answer for run {ctx.run_id}"


def pipeline(policy: str) -> Pipeline:
    return Pipeline(
        f"machine_{policy}",
        stages=(
            Stage("first", write),
            Stage("fetch", call_outside, outside=True),
            Stage("wait", write, defer_on=(NotYet,), later=lambda ctx, exc: Later(0.01)),
        ),
        queue=QUEUE,
        retries=Retries(max=5, min_backoff_ms=10, max_backoff_ms=10),
        overlap=policy,
    )


PIPELINES = {policy: pipeline(policy) for policy in OVERLAP_POLICIES}
BY_NAME = {p.name: p for p in PIPELINES.values()}


class Outbox(Middleware):
    """Keeps every message the kit sends; loses the send when the delivery says so."""

    def __init__(self) -> None:
        self.sent: list[dramatiq.Message[Any]] = []
        self._lock = threading.Lock()

    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message, delay) -> None:  # type: ignore[no-untyped-def]
        if plan().fault == "lose_hand_off":
            raise HandOffLost(f"{message.actor_name}: the worker died before it was sent")

    def after_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message, delay) -> None:  # type: ignore[no-untyped-def]
        with self._lock:
            self.sent.append(message)

    def take(self) -> list[dramatiq.Message[Any]]:
        with self._lock:
            sent, self.sent = self.sent, []
        return sent


def deliver(broker: StubBroker, message: dramatiq.Message[Any], how: Plan) -> bool:
    """Deliver `message` as a worker thread would; False when the worker died (the message
    is then due again). Any other exception is the test's failure."""
    PLAN.current = how
    CurrentMessage._MESSAGE.set(message)
    try:
        broker.get_actor(message.actor_name).fn(*message.args, **message.kwargs)
        return True
    except (WorkerDied, HandOffLost):
        return False
    finally:
        CurrentMessage._MESSAGE.set(None)
        PLAN.current = None


def deliver_at_once(broker: StubBroker, message: dramatiq.Message[Any], how: Plan) -> None:
    """`how.copies` copies of `message` on threads of their own, all at once."""
    errors: list[BaseException] = []

    def one() -> None:
        try:
            deliver(broker, message, how)
        except BaseException as exc:  # noqa: BLE001 (handed to the test's thread)
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(how.copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def is_tick(message: dramatiq.Message[Any]) -> bool:
    return message.actor_name.endswith("_tick")


def closes(pipeline: str, status: str) -> float:
    labels = {"pipeline": pipeline, "status": status}
    return REGISTRY.get_sample_value("taskpipes_pipeline_runs_total", labels) or 0.0


class ExactlyOnce(RuleBasedStateMachine):
    broker: StubBroker
    outbox: Outbox

    def __init__(self) -> None:
        super().__init__()
        with begin() as session:
            for table in ("machine_writes", "stage_runs", "runs", "pipeline_controls"):
                session.execute(text(f"DELETE FROM {table}"))  # noqa: S608 (our own names)
        self.outbox.take()
        self.pending: list[dramatiq.Message[Any]] = []
        self.ticks: Counter[str] = Counter()
        self.cancelled: set[int] = set()
        self.broken = False
        self.closes_before = {
            (p, s): closes(p, s) for p in BY_NAME for s in (runs.SUCCEEDED, runs.SKIPPED)
        }

    # -- what the machine can do ------------------------------------------------------

    @rule(policy=st.sampled_from(OVERLAP_POLICIES))
    def tick(self, policy: str) -> None:
        p = PIPELINES[policy]
        at = T0 + timedelta(minutes=self.ticks[p.name])
        self.ticks[p.name] += 1
        actor = self.broker.get_actor(p.actor_name("tick"))
        self.pending.append(
            actor.message_with_options(kwargs={"tick": at.isoformat(), "explicit": True})
        )

    @precondition(lambda self: self.pending)
    @rule(pick=st.integers(0, 20), copies=st.sampled_from([1, 1, 2, 3]))
    def deliver(self, pick: int, copies: int) -> None:
        """A delivery, or copies of a stage message delivered at once (a requeue after a
        dropped connection while the first worker still works, a hand-off sent twice)."""
        message = self.pending.pop(pick % len(self.pending))
        if copies == 1 or is_tick(message):
            deliver(self.broker, message, Plan())
        else:
            deliver_at_once(self.broker, message, Plan(group=next(GROUPS), copies=copies))
        self.collect()

    @precondition(lambda self: self.pending)
    @rule(pick=st.integers(0, 20), fault=st.sampled_from(FAULTS))
    def deliver_with_fault(self, pick: int, fault: str) -> None:
        """A delivery that goes wrong; the message stays due unless it was consumed (a
        deferral sends a delayed message of its own)."""
        message = self.pending.pop(pick % len(self.pending))
        if fault in AFTER_COMMIT and is_tick(message):
            fault = "crash"  # a tick's redelivery after its run went on is another story
        done = deliver(self.broker, message, Plan(fault))
        if not done or fault in AFTER_COMMIT:
            self.pending.append(message)
        self.collect()

    @rule(pick=st.integers(0, 20))
    def cancel(self, pick: int) -> None:
        """`taskpipes cancel` of an unfinished run whose tick was delivered."""
        candidates = self.cancellable()
        if not candidates:
            return
        with begin() as session:
            run = session.get_one(Run, candidates[pick % len(candidates)])
            if controls.cancel(session, BY_NAME[run.pipeline], run, "machine", clock.now()):
                self.cancelled.add(run.id)

    # -- what must hold -----------------------------------------------------------------

    @invariant()
    def no_stage_wrote_twice(self) -> None:
        with reading() as session:
            twice = session.execute(
                select(WRITES.c.run_id, WRITES.c.stage, func.count())
                .group_by(WRITES.c.run_id, WRITES.c.stage)
                .having(func.count() > 1)
            ).all()
        self.broken = bool(twice)
        assert not twice, f"stages written more than once (run, stage, rows): {twice}"

    def teardown(self) -> None:
        """Deliver what is still due, then check every run's end (unless a stage already
        wrote twice: that failure is the one to report)."""
        if self.broken:
            return
        self.drain()
        self.no_stage_wrote_twice()
        with reading() as session:
            ended = list(session.scalars(select(Run).order_by(Run.id)))
            written = set(session.execute(select(WRITES.c.run_id, WRITES.c.stage)).all())
        for run in ended:
            self.check_run(run, {stage for (run_id, stage) in written if run_id == run.id})
        for (name, status), before in self.closes_before.items():
            counted = closes(name, status) - before
            recorded = sum(1 for r in ended if (r.pipeline, r.status) == (name, status))
            assert counted == recorded, (
                f"{name}: {counted} closes counted {status}, {recorded} runs"
            )

    # -- helpers --------------------------------------------------------------------------

    def collect(self) -> None:
        self.pending.extend(self.outbox.take())

    def cancellable(self) -> list[int]:
        due_ticks = {m.message_id for m in self.pending if is_tick(m)}
        with reading() as session:
            unfinished = session.execute(
                select(Run.id, Run.message_id).where(Run.status.in_(runs.IN_PROGRESS))
            ).all()
        return sorted(run_id for run_id, message_id in unfinished if message_id not in due_ticks)

    def drain(self) -> None:
        for _ in range(MAX_DRAIN):
            if not self.pending:
                return
            message = self.pending.pop(0)
            assert deliver(self.broker, message, Plan()), f"{message} failed with no fault"
            self.collect()
        raise AssertionError(f"still {len(self.pending)} messages due after {MAX_DRAIN}")

    def check_run(self, run: Run, written: set[str]) -> None:
        """A run's end agrees with its story: closed, its stages done in order, once."""
        p = BY_NAME[run.pipeline]
        story = f"run {run.id} of {p.name} ({run.status}, {run.error}), wrote {sorted(written)}"
        assert run.status in runs.FINISHED, f"stuck: {story}"
        # The outside stage (fetch) writes nothing of its own.
        writers = [s.name for s in p.stages if not getattr(s, "outside", False)]
        assert written == set(writers[: len(written)]), f"out of order: {story}"
        if run.id in self.cancelled:
            assert run.status == runs.CANCELLED, f"cancel lost: {story}"
        if run.status == runs.SUCCEEDED:
            assert written == set(writers), f"succeeded without its writes: {story}"
        elif run.status == runs.SKIPPED:
            assert p.overlap == "skip" and not written, f"wrongly skipped: {story}"
        else:
            assert run.status == runs.CANCELLED, f"unexpected end: {story}"
            by = run.cancelled_by or ""
            assert run.id in self.cancelled or by.startswith(CANCELLED_BY_POLICY), story


@pytest.fixture(scope="module")
def machine_broker() -> Iterator[StubBroker]:
    """PostgreSQL for the kit's settings, and a broker that no worker consumes, made
    Dramatiq's global one while the machine runs (the kit sends through it)."""
    with pytest.MonkeyPatch.context() as env, services.postgres_database() as url:
        env.setenv("DATABASE_URL", url)
        testing.reset()
        migrate.upgrade(url)
        WRITES.metadata.create_all(get_engine())
        previous = dramatiq.get_broker()
        outbox = Outbox()
        # Dramatiq's own middleware only to accept the actors' options: nothing is consumed.
        broker = StubBroker(middleware=[*(m() for m in default_middleware), outbox])
        for p in PIPELINES.values():
            pipeline_actors(broker, p)
        dramatiq.set_broker(broker)
        ExactlyOnce.broker, ExactlyOnce.outbox = broker, outbox
        try:
            yield broker
        finally:
            dramatiq.set_broker(previous)
            testing.reset()


def test_every_stage_writes_once_and_every_run_closes_once(machine_broker: StubBroker) -> None:
    run_state_machine_as_test(ExactlyOnce, settings=BUDGET)
