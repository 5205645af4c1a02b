"""Run one pipeline tick end to end and wait for its outcome in the run table."""

from __future__ import annotations

import atexit
import functools
import time
from dataclasses import dataclass
from datetime import datetime

import dramatiq
from sqlalchemy import select

from actors.registry import PipelineEntry
from db.models import Run, StageRun
from db.session import begin
from pipelines import runs
from pipelines.schedule import floor_tick
from taskpipes.settings import get_settings

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


def enqueue_tick(entry: PipelineEntry, tick: datetime) -> tuple[int, bool]:
    """Record and send an explicit request for `tick`. Returns (run id, already succeeded)."""
    message = entry.tick_actor.message_with_options(
        kwargs={"tick": tick.isoformat(), "explicit": True}
    )
    with begin() as session:
        existing = runs.find_run(session, entry.name, tick)
        if existing is not None and existing.status == "succeeded":
            return existing.id, True
        run_id = runs.record_queued(session, entry.name, tick, message.message_id)
        ours = session.get_one(Run, run_id).message_id == message.message_id
    if ours:
        entry.tick_actor.broker.enqueue(message)
    return run_id, False


def wait_for(run_id: int, timeout_s: float) -> Outcome:
    deadline = time.monotonic() + timeout_s
    while True:
        outcome = outcome_of(run_id)
        if outcome.status in runs.FINISHED or time.monotonic() > deadline:
            return outcome
        time.sleep(POLL_INTERVAL_S)


def outcome_of(run_id: int, already_done: bool = False) -> Outcome:
    with begin() as session:
        run = session.get_one(Run, run_id)
        stages = session.execute(
            select(StageRun.stage, StageRun.status, StageRun.duration_seconds, StageRun.rows_written)
            .where(StageRun.run_id == run_id)
            .order_by(StageRun.id)
        )
        return Outcome(
            run.id, run.pipeline, run.tick, run.status, run.error, [tuple(s) for s in stages], already_done
        )


def run_tick(entry: PipelineEntry, at: datetime, timeout_s: float) -> Outcome:
    """Run `entry` for the tick `at` falls in, waiting at most `timeout_s`."""
    tick = floor_tick(entry.schedule.spec, at)
    ensure_workers(entry.tick_actor.broker)
    run_id, done = enqueue_tick(entry, tick)
    if done:
        return outcome_of(run_id, already_done=True)
    return wait_for(run_id, timeout_s)
