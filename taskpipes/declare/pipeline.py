"""Declarations: what a pipeline is, as frozen data. No I/O, no broker, no settings.

A pipeline is a name, a schedule (or none: on demand), ordered stages and options. The
kit turns a declaration into actors (taskpipes.runtime.wiring) and runs its stages
(taskpipes.runtime.stages); everything that lists pipelines reads the declarations
(taskpipes.declare.registry).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from taskpipes.declare.errors import PermanentError
from taskpipes.declare.schedule import Schedule

# RabbitMQ redelivers a message held unacked for consumer_timeout (30 min by default), and a
# delayed message is held unacked until due; so no delay may come near it.
MAX_DELAY_S = 20 * 60
# Every stage time limit stays far below consumer_timeout for the same reason.
STAGE_TIME_LIMIT_MS = 10 * 60 * 1000
# A deferring exception that does not say how long to wait waits this long.
DEFAULT_DEFER_S = 60.0
# What a tick does while an earlier run of its pipeline is still running: start anyway,
# record itself skipped, wait for it, or cancel it (between stages) and start.
OVERLAP_POLICIES = ("allow", "skip", "queue", "cancel_previous")


@dataclass(frozen=True)
class Retries:
    """How a failing stage is retried, written out: Dramatiq's defaults (20 retries, up to
    7 days of backoff) would outlive RabbitMQ's consumer_timeout and the data's usefulness.

    `min_backoff_ms=None` takes the settings' TASKPIPES_RETRY_MIN_BACKOFF_MS (2 s; tests
    shrink it so a failing message dead-letters in seconds). A PermanentError is never
    retried, whatever these say.
    """

    max: int = 5
    min_backoff_ms: int | None = None
    max_backoff_ms: int = 300_000
    time_limit_ms: int = STAGE_TIME_LIMIT_MS

    def __post_init__(self) -> None:
        if self.max < 0 or self.max_backoff_ms <= 0 or self.time_limit_ms <= 0:
            raise ValueError(f"retries must be non-negative and limits positive: {self}")
        if self.time_limit_ms > MAX_DELAY_S * 1000:
            raise ValueError(
                f"time limit {self.time_limit_ms} ms is past {MAX_DELAY_S} s: RabbitMQ would "
                "redeliver the message while it still runs"
            )


# The largest output a stage may hand on, encoded as JSON: outputs are kept in the
# stage's record and read back by the next stage, so a bulk result belongs in a table.
MAX_OUTPUT_BYTES = 1024 * 1024
# Errors that fail a stage at once by default: they come from the stage's own code meeting
# data it does not expect (json.JSONDecodeError and most schema checks are ValueErrors, a
# missing key, a wrong type), and a retry seconds later meets the same data and fails the
# same way, after a minute of retries. Network, database and rate-limit errors are not
# among them, so they are retried.
FAIL_FAST: tuple[type[Exception], ...] = (KeyError, TypeError, ValueError)


class NoSession(PermanentError):
    """An outside stage asked for a session: it runs with no transaction open."""


@dataclass(frozen=True)
class Context:
    """What a stage's function receives: the run (`pipeline`, `stage`, `run_id`, `tick`,
    `now`) and `input`, the previous stage's output (the first stage's: the tick's options,
    a dict). `session` is the SQLAlchemy session of the stage's transaction; an outside
    stage has none. `opened` is that session, or what makes it on first use: a stage that
    writes nothing through it costs no session."""

    pipeline: str
    stage: str
    run_id: int
    tick: datetime
    now: datetime
    opened: Session | Callable[[], Session] | None = field(default=None, repr=False)
    input: Any = None
    # Rows declared by `wrote`, by table (the context itself is frozen).
    written: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def session(self) -> Session:
        if self.opened is None:
            raise NoSession(
                f"stage {self.stage!r} runs outside any transaction (outside=True): it has "
                "no session; return what it fetched and write it in the next stage"
            )
        return self.opened if isinstance(self.opened, Session) else self.opened()

    def wrote(self, rows: int, table: str) -> int:
        """Count `rows` written to `table` by this stage: the kit adds them to the stage's
        record (rows_written) and to taskpipes_rows_written_total{table} when the stage
        commits, so a stage that is rolled back or run twice counts nothing twice.
        Returns `rows`."""
        self.written[table] = self.written.get(table, 0) + rows
        return rows

    @property
    def rows_written(self) -> int:
        return sum(self.written.values())


@dataclass(frozen=True)
class Later:
    """A deferred stage: send `stage` (default: the same one) again after `delay_s`,
    without spending a retry."""

    delay_s: float
    stage: str | None = None


def as_asked(ctx: Context, exc: Exception) -> Later:
    """Wait as long as the exception says (`wait_seconds`, e.g. a rate limit's reset)."""
    return Later(float(getattr(exc, "wait_seconds", DEFAULT_DEFER_S)))


@dataclass(frozen=True)
class Stage:
    """One stage: `work(ctx)` does it, and its return value is the stage's output, handed
    to the next stage as `ctx.input` (JSON, at most MAX_OUTPUT_BYTES).

    By default the stage runs in its own transaction (`ctx.session`), which commits its
    writes, its output and the record that it is done together: exactly once.
    `outside=True` is for a stage that talks to the outside world: it runs with no
    transaction open and no session, at least once; its output is recorded before the
    next stage starts, and the next stage writes what it needs from it, exactly once.

    Exceptions in `defer_on` do not fail the stage: `later(ctx, exc)` (in a transaction)
    says when to try again; it may raise PermanentError to fail the run instead.
    Exceptions in `fail_fast` fail the run at once instead of after the retries.
    """

    name: str
    work: Callable[[Context], Any]
    outside: bool = False
    defer_on: tuple[type[Exception], ...] = ()
    later: Callable[[Context, Exception], Later] = as_asked
    retries: Retries | None = None
    fail_fast: tuple[type[Exception], ...] = FAIL_FAST


@dataclass(frozen=True)
class FanOut:
    """The escape hatch for a stage the kit cannot run as one message (stargazers' waves
    of page messages). The kit hands off to the actor `<pipeline>_<start>` with the run id;
    the application's own actors (made with `Registry.actor`) do the work and close the
    stage and the run with `taskpipes.close_fan_out` (or `fail_fan_out`)."""

    name: str
    start: str


@dataclass(frozen=True)
class Pipeline:
    """A pipeline declaration. `schedule=None` runs on demand: its tick is the minute asked.

    `computes_past`: the stages compute from stored data only, so a past tick can be run
    faithfully (`taskpipes backfill`). `overlap` is one of OVERLAP_POLICIES. `jitter_s`
    delays each tick's first stage by up to that many seconds, the same for every
    delivery of one tick (`tick_jitter`). `tick_options` name extra keyword arguments of the
    tick message: the kit records them with the run and hands them to the first stage as
    its `ctx.input`; `on_claim(session, run_id, options)`, if given, also sees them in the
    transaction that claims the tick.
    """

    name: str
    stages: tuple[Stage | FanOut, ...]
    schedule: Schedule | None = None
    retries: Retries = field(default_factory=Retries)
    queue: str | None = None
    computes_past: bool = False
    tick_options: tuple[str, ...] = ()
    on_claim: Callable[[Session, int, Mapping[str, Any]], None] | None = None
    overlap: str = "allow"
    jitter_s: float = 0.0

    def __post_init__(self) -> None:
        names = [stage.name for stage in self.stages]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"pipeline {self.name!r} needs stages with distinct names: {names}")
        if self.overlap not in OVERLAP_POLICIES:
            raise ValueError(
                f"pipeline {self.name!r}: overlap must be one of {OVERLAP_POLICIES}, "
                f"got {self.overlap!r}"
            )
        if not 0 <= self.jitter_s <= MAX_DELAY_S:
            raise ValueError(
                f"pipeline {self.name!r}: jitter_s must be within 0-{MAX_DELAY_S}, "
                f"got {self.jitter_s}"
            )

    @property
    def longest_run(self) -> timedelta:
        """The longest a run can still be working: every stage at its time limit on every
        attempt, with the backoffs between. A run "running" for longer has crashed."""
        total_ms = 0
        for stage in self.stages:
            retries = (stage.retries if isinstance(stage, Stage) else None) or self.retries
            attempts = retries.max + 1
            total_ms += attempts * retries.time_limit_ms + retries.max * retries.max_backoff_ms
        return timedelta(milliseconds=total_ms)

    @property
    def queue_name(self) -> str:
        return self.queue or self.name

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(stage.name for stage in self.stages)

    def actor_name(self, part: str) -> str:
        """`github_top_tick`, `github_top_fetch`: the names messages in RabbitMQ carry."""
        return f"{self.name}_{part}"

    def entry_actor(self, stage: Stage | FanOut) -> str:
        """The actor a hand-off to `stage` sends to (a fan-out's start actor)."""
        return self.actor_name(stage.start if isinstance(stage, FanOut) else stage.name)

    def stage(self, name: str) -> Stage | FanOut:
        return self.stages[self.stage_names.index(name)]

    def before(self, name: str) -> str | None:
        """The name of the stage before `name` (whose output is its input), or None."""
        index = self.stage_names.index(name)
        return self.stage_names[index - 1] if index else None

    def after(self, name: str) -> Stage | FanOut | None:
        """The stage that follows `name`, or None when `name` is the last."""
        index = self.stage_names.index(name) + 1
        return self.stages[index] if index < len(self.stages) else None


def tick_jitter(pipeline: Pipeline, tick: datetime) -> float:
    """The delay of `tick`'s first stage, within the pipeline's jitter: seeded by the
    pipeline and the tick (a string seed is hashed the same in every process), so a
    redelivered tick waits as long as its first delivery did."""
    if not pipeline.jitter_s:
        return 0.0
    return random.Random(f"{pipeline.name}@{tick.isoformat()}").uniform(0, pipeline.jitter_s)
