"""A tick periodiq could not send because RabbitMQ was down is filled within a minute of
RabbitMQ coming back (docs/scheduling.md, "Missed ticks").

Only the scheduler loses RabbitMQ: it talks to it through a TcpProxy the test switches off
for a minute and a bit, across one tick, and runs under a supervisor, as in production.
Its send waits for the broker; the tick it sends once RabbitMQ is back is more than a
period old, so the workers drop it, and the missed tick can only come back through the
catch-up pass. Workers and the
machine's RabbitMQ are untouched. The scheduler's send must stay blocked for more than a
period, a minute at the least, of real time: the one test that waits on wall-clock minutes,
hence the faults mark. Its processes' clocks start 35 s into a minute (tests/shifted_clock.py)
so that it does not also wait for a minute to begin.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from db import schema as migrate
from taskpipes.declare.schedule import floor_minute
from taskpipes.store.tables import Run
from tests.processes import service_env, supervised
from tests.queues import wait_until
from tests.shifted_clock import (
    clock_offset,
    next_minute_at,
    scheduler_args,
    shifted_now,
    workers,
)
from tests.tcpproxy import TcpProxy

# How long after RabbitMQ is back the missed tick may take to be enqueued: the catch-up
# pass runs at the next minute, and its message and enqueue take a few seconds.
FILL_BOUND = timedelta(seconds=60 + 15)


# Where in its minute the processes' clocks start: the scheduler and the workers are up
# well before the next tick, when RabbitMQ goes away.
START_SECOND = 35


def sleep_until(moment: datetime, offset_s: float) -> None:
    """Sleep until a clock `offset_s` ahead reads `moment`."""
    time.sleep(max(0.0, (moment - shifted_now(offset_s)).total_seconds()))


@pytest.mark.faults
def test_a_tick_the_scheduler_could_not_send_is_filled_within_a_minute(
    tmp_path: Path, postgres_url: str, rabbitmq: str, simulator
) -> None:
    # Given rollup every minute, already recorded as running from this minute on
    migrate.upgrade(postgres_url)
    engine = create_engine(postgres_url)
    offset = clock_offset(next_minute_at(START_SECOND))
    started = floor_minute(shifted_now(offset))
    with Session(engine) as session, session.begin():
        session.add(Run(pipeline="rollup", tick=started, status="succeeded", attempts=1))
    base = {"DATABASE_URL": postgres_url, "GITHUB_API_URL": simulator.url,
            "TASKPIPES_SCHEDULE_ROLLUP": "* * * * *"}  # fmt: skip
    missed = started + timedelta(minutes=1)
    worker_env = service_env(tmp_path, BROKER_URL=rabbitmq, **base)

    with TcpProxy(5672) as proxy, workers(worker_env, tmp_path / "workers.log", offset):
        scheduler_env = service_env(tmp_path, BROKER_URL=proxy.proxied(rabbitmq), **base)
        with supervised(scheduler_args(offset), scheduler_env, tmp_path / "scheduler.log"):
            # When RabbitMQ is unreachable for the scheduler across one tick
            sleep_until(missed - timedelta(seconds=3), offset)
            proxy.stop()
            sleep_until(missed + timedelta(seconds=65), offset)
            assert missed not in ticks(engine)
            proxy.start()
            back = shifted_now(offset)

            # Then the missed tick is enqueued within a minute and runs
            run = wait_until(lambda: run_at(engine, missed), 150, "the missed tick to be filled")
    engine.dispose()

    assert run.status == "succeeded", run.error
    assert run.enqueued_at is not None and run.enqueued_at - back <= FILL_BOUND, (back, run)


def ticks(engine) -> set[datetime]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return set(conn.scalars(select(Run.tick).where(Run.pipeline == "rollup")))


def run_at(engine, tick: datetime) -> Run | None:  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        run = session.scalars(select(Run).where(Run.pipeline == "rollup", Run.tick == tick)).one_or_none()  # fmt: skip
        if run is None or run.status not in ("succeeded", "failed", "dead"):
            return None
        session.expunge(run)
        return run
