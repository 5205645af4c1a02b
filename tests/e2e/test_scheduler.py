"""Real schedulers: two periodiq processes share the work, downtime is caught up.

Real periodiq and dramatiq processes on the real RabbitMQ, each with its wall clock moved
to a chosen moment (tests/shifted_clock.py), so a test stands just before a minute's end,
or minutes later, instead of waiting for the wall clock to get there. periodiq sends what
is due at the minute it starts in, then sleeps until the next tick (alarm): both paths run.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine

from db import schema as migrate
from db.models import Snapshot
from githubsim import Simulator
from taskpipes.declare.schedule import floor_minute
from taskpipes.store.tables import Run, StageRun
from tests.processes import metric_sum, scrape, service_env
from tests.queues import wait_until
from tests.shifted_clock import clock_offset, next_minute_at, scheduler, workers

EVERY_MINUTE = "* * * * *"
EVERY_OTHER_MINUTE = "*/2 * * * *"
# Long enough for a few minute ticks, short enough that a bug fails rather than hangs.
DEADLINE_S = 150
# The downtime test's first tick must be done within the two minutes before its next one.
FIRST_TICK_DEADLINE_S = 100
# Where in its minute a scheduler's clock starts: late enough that the next minute comes
# soon, early enough that a slow start (importing the actors, 2-4 s on a 2-core box at
# load 14) still sends that minute's tick (periodiq waits for the next one past 55 s).
START_SECOND = 35


def runs_by_tick(engine: Engine, pipeline: str) -> dict[datetime, str]:
    with engine.connect() as conn:
        rows = conn.execute(select(Run.tick, Run.status).where(Run.pipeline == pipeline))
        return {tick: status for tick, status in rows}


def test_two_schedulers_two_workers_one_run_per_tick(
    tmp_path: Path, postgres_url: str, rabbitmq: str, simulator: Simulator
) -> None:
    # Given two schedulers and two worker groups, github_top every minute, all with a clock
    # 35 s into a minute: the schedulers send its tick as they start, the next one 25 s
    # later, woken from their sleep
    migrate.upgrade(postgres_url)
    base = {"DATABASE_URL": postgres_url, "BROKER_URL": rabbitmq, "GITHUB_API_URL": simulator.url,
            "TASKPIPES_SCHEDULE_GITHUB_TOP": EVERY_MINUTE}  # fmt: skip
    envs = [service_env(tmp_path, **base) for _ in range(4)]
    engine = create_engine(postgres_url)
    started = next_minute_at(START_SECOND)
    offset = clock_offset(started)

    with (
        workers(envs[0], tmp_path / "workers-a.log", offset),
        workers(envs[1], tmp_path / "workers-b.log", offset),
        scheduler(envs[2], tmp_path / "scheduler-a.log", offset),
        scheduler(envs[3], tmp_path / "scheduler-b.log", offset),
    ):
        # When two ticks have run
        def two_ticks_done() -> dict[datetime, str] | None:
            done = {t: s for t, s in runs_by_tick(engine, "github_top").items() if s == "succeeded"}
            return done if len(done) >= 2 else None

        done = wait_until(two_ticks_done, DEADLINE_S, "two github_top ticks")
        duplicates = sum(
            metric_sum(
                scrape(int(env["dramatiq_prom_port"])),
                "taskpipes_duplicate_ticks_total",
                pipeline="github_top",
            )
            for env in envs[:2]
        )
        scheduled = sum(
            metric_sum(
                scrape(int(env["TASKPIPES_METRICS_PORT"])),
                "taskpipes_ticks_scheduled_total",
                actor="github_top_tick",
            )
            for env in envs[2:]
        )

    # Then every tick ran once, with exactly 100 snapshot rows, and the duplicates were counted
    ticks = sorted(done)
    assert ticks[0] >= floor_minute(started)
    assert all(b - a == timedelta(minutes=1) for a, b in zip(ticks, ticks[1:], strict=False))
    with engine.connect() as conn:
        for tick in ticks:
            assert conn.scalar(select(func.count()).where(Snapshot.tick == tick)) == 100
        stage_attempts = conn.execute(
            select(StageRun.stage, func.max(StageRun.attempts))
            .join(Run, Run.id == StageRun.run_id)
            .where(Run.pipeline == "github_top", Run.tick.in_(ticks))
            .group_by(StageRun.stage)
        ).all()
    engine.dispose()
    assert dict(stage_attempts) == {"fetch": 1, "normalize": 1, "store": 1, "aggregate": 1}
    assert scheduled >= 2 * len(ticks)  # both schedulers sent every tick
    assert duplicates >= len(ticks)  # and every second delivery was recognised


def test_scheduler_downtime_is_caught_up_per_policy(
    tmp_path: Path, postgres_url: str, rabbitmq: str, simulator: Simulator
) -> None:
    # Given one scheduler and workers, github_top (latest) and rollup (all) every other
    # minute, their clocks just past an even minute
    migrate.upgrade(postgres_url)
    base = {"DATABASE_URL": postgres_url, "BROKER_URL": rabbitmq, "GITHUB_API_URL": simulator.url,
            "TASKPIPES_SCHEDULE_GITHUB_TOP": EVERY_OTHER_MINUTE,
            "TASKPIPES_SCHEDULE_ROLLUP": EVERY_OTHER_MINUTE}  # fmt: skip
    engine = create_engine(postgres_url)
    t1 = next_minute_at(second=0, minutes_apart=2)
    offset = clock_offset(t1 + timedelta(seconds=5))
    worker_env, scheduler_env = service_env(tmp_path, **base), service_env(tmp_path, **base)

    with (
        workers(worker_env, tmp_path / "workers-1.log", offset),
        scheduler(scheduler_env, tmp_path / "scheduler-1.log", offset),
    ):
        # When both pipelines have run that tick
        def first_tick_done() -> bool:
            top, rollup = runs_by_tick(engine, "github_top"), runs_by_tick(engine, "rollup")
            return top.get(t1) == "succeeded" and rollup.get(t1) == "succeeded"

        # (well before the scheduler's clock reaches the next tick, which must be missed)
        wait_until(first_tick_done, FIRST_TICK_DEADLINE_S, "the first tick of both pipelines")

    # and everything is down across the next two ticks; it comes back in the odd minute
    # after them, whose only periodic message is the catch-up pass
    missed = [t1 + timedelta(minutes=2), t1 + timedelta(minutes=4)]
    offset = clock_offset(t1 + timedelta(minutes=7, seconds=5))
    with (
        workers(worker_env, tmp_path / "workers-2.log", offset),
        scheduler(scheduler_env, tmp_path / "scheduler-2.log", offset),
    ):

        def caught_up() -> bool:
            top, rollup = runs_by_tick(engine, "github_top"), runs_by_tick(engine, "rollup")
            finished = ("succeeded", "skipped")
            return all(top.get(t) in finished and rollup.get(t) in finished for t in missed)

        wait_until(caught_up, DEADLINE_S, "the missed ticks to be caught up")

    # Then latest ran the newest missed tick and recorded the other as skipped; all ran both
    top, rollup = runs_by_tick(engine, "github_top"), runs_by_tick(engine, "rollup")
    assert (top[missed[0]], top[missed[1]]) == ("skipped", "succeeded")
    assert (rollup[missed[0]], rollup[missed[1]]) == ("succeeded", "succeeded")
    with engine.connect() as conn:
        reason = conn.scalar(
            select(Run.error).where(Run.pipeline == "github_top", Run.tick == missed[0])
        )
    engine.dispose()
    assert "catch-up policy 'latest'" in reason
