"""Run one pipeline tick end to end and wait for its outcome in the run table."""

from __future__ import annotations

import atexit
import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import dramatiq
from sqlalchemy import select
from tqdm import tqdm

from taskpipes.declare.pipeline import Pipeline
from taskpipes.declare.registry import registry
from taskpipes.declare.schedule import EVERY_MINUTE, floor_minute, floor_tick, ticks_between
from taskpipes.declare.settings import get_settings
from taskpipes.runtime.current import current_broker
from taskpipes.runtime.stages import complete_run
from taskpipes.runtime.ticks import enqueue_tick, enqueue_ticks
from taskpipes.store import runs
from taskpipes.store.database import reading, retrying_until
from taskpipes.store.tables import Run, StageRun

# How often the waiting CLI looks at the run table.
POLL_INTERVAL_S = 0.1
# Worker threads when the broker is in-process.
IN_PROCESS_THREADS = 4


@dataclass(frozen=True)
class Outcome:
    run_id: int
    pipeline: str
    tick: datetime
    status: str
    error: str | None
    stages: list[tuple[str, str, float | None, int]]
    already_done: bool = False


# Not configuration: derived from the broker (the one global), one worker per broker for
# the life of the process, since a Worker's middleware stays on its broker for good.
@functools.cache
def _start_in_process_worker(broker: dramatiq.Broker) -> dramatiq.Worker:
    # One worker per process: each Worker adds its own middleware to the broker for good.
    worker = dramatiq.Worker(broker, worker_threads=IN_PROCESS_THREADS, worker_timeout=50)
    worker.start()
    atexit.register(worker.stop)
    return worker


def ensure_workers(broker: dramatiq.Broker) -> None:
    """Start worker threads inside this process when no broker URL is set."""
    if get_settings().in_process:
        _start_in_process_worker(broker)


def wait_for(
    run_id: int, timeout_s: float, on_poll: Callable[[int], None] | None = None
) -> Outcome:
    """Poll the run until it finishes; `on_poll(run_id)` after each look (a progress bar).

    The run goes on in the workers whatever happens to this process's connection, so a
    database outage meanwhile is waited out (within the timeout), not reported as the
    run's failure."""
    deadline = time.monotonic() + timeout_s

    def look() -> Outcome:
        outcome = outcome_of(run_id)
        if on_poll is not None:
            on_poll(run_id)
        return outcome

    while True:
        outcome = retrying_until(look, deadline)
        if outcome.status in runs.FINISHED or time.monotonic() > deadline:
            return outcome
        time.sleep(POLL_INTERVAL_S)


def outcome_of(run_id: int, already_done: bool = False) -> Outcome:
    with reading() as session:
        run = session.get_one(Run, run_id)
        stages = session.execute(
            select(
                StageRun.stage, StageRun.status, StageRun.duration_seconds, StageRun.rows_written
            )
            .where(StageRun.run_id == run_id)
            .order_by(StageRun.id)
        )
        return Outcome(
            run.id,
            run.pipeline,
            run.tick,
            run.status,
            run.error,
            [(stage, status, seconds, rows) for stage, status, seconds, rows in stages],
            already_done,
        )


def tick_of(entry: Pipeline, at: datetime) -> datetime:
    """The tick `at` falls in. A pipeline whose tick actor is not periodic runs on demand,
    and its tick is the minute asked for, whatever its nominal schedule."""
    if entry.schedule is None:
        return floor_minute(at)
    return floor_tick(entry.schedule.spec, at)


def run_tick(
    entry: Pipeline,
    at: datetime,
    timeout_s: float,
    options: Mapping[str, object] | None = None,
    on_poll: Callable[[int], None] | None = None,
) -> Outcome:
    """Run `entry` for the tick `at` falls in, waiting at most `timeout_s`.

    `options` are extra tick message arguments (pipelines that take any, e.g. stargazers).
    """
    tick = tick_of(entry, at)
    ensure_workers(current_broker())
    run_id, done = enqueue_tick(entry, tick, options)
    if done:
        return outcome_of(run_id, already_done=True)
    with abandoned_on_exit([run_id], timeout_s):
        outcome = wait_for(run_id, timeout_s, on_poll)
    return outcome if outcome.status in runs.FINISHED else outcome_of(run_id)


def backfill(entry: Pipeline, start: datetime, end: datetime, timeout_s: float) -> list[Outcome]:
    """Run every tick of `entry` in [start, end], showing progress; returns their outcomes.

    Ticks that already succeeded are left as they are, so a backfill can be repeated.
    """
    if not entry.computes_past:
        raise BackfillRefused(
            f"pipeline {entry.name!r} cannot compute past ticks: it reads a source that only "
            f"knows the present. Backfill works for: {', '.join(registry.backfillable())}"
        )
    spec = (entry.schedule or EVERY_MINUTE).spec
    ticks = list(ticks_between(spec, start, end - start + timedelta(minutes=1)))
    ensure_workers(current_broker())
    run_ids = [run_id for run_id, _ in enqueue_ticks(entry, ticks)]
    deadline = time.monotonic() + timeout_s
    with (
        abandoned_on_exit(run_ids, timeout_s),
        tqdm(total=len(run_ids), desc=f"backfill {entry.name}", unit="tick") as progress,
    ):
        pending = set(run_ids)
        while pending and time.monotonic() < deadline:
            finished = retrying_until(functools.partial(finished_among, pending), deadline)
            progress.update(len(finished))
            pending -= finished
            if pending:
                time.sleep(POLL_INTERVAL_S)
    return [outcome_of(run_id) for run_id in run_ids]


@contextlib.contextmanager
def abandoned_on_exit(run_ids: list[int], timeout_s: float) -> Iterator[None]:
    """On leaving, record the runs still unfinished as failed when the workers are in-process.

    Their messages die with this process, so a run left queued or running would wait for
    nothing, and a re-run of its tick would wait for it. Recorded failed, the next run of
    the tick reopens it. With RabbitMQ the messages outlive the wait, and the workers go on.
    """
    why = f"gave up waiting after {timeout_s:g} s"
    try:
        yield
    except KeyboardInterrupt:
        why = "interrupted"
        raise
    except Exception as exc:
        why = f"stopped waiting on {type(exc).__name__}"
        raise
    finally:
        if get_settings().in_process:
            reason = f"{why}; in-process workers do not outlive the command, so the run is given up"
            for run_id in set(run_ids) - finished_among(set(run_ids)):
                last = outcome_of(run_id).error
                complete_run(
                    run_id, runs.FAILED, f"{reason}; last error: {last}" if last else reason
                )


def finished_among(run_ids: set[int]) -> set[int]:
    """The runs of `run_ids` that have finished: one query for the lot."""
    with reading() as session:
        return set(
            session.scalars(
                select(Run.id).where(Run.id.in_(run_ids), Run.status.in_(runs.FINISHED))
            )
        )


class BackfillRefused(ValueError):
    """The pipeline cannot run past ticks faithfully."""
