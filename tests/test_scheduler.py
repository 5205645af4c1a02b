"""Real schedulers: two periodiq processes share the work, downtime is caught up.

These tests follow wall-clock minutes (ticks are `* * * * *`), so each takes a few minutes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine

from db import migrate
from db.models import Snapshot
from taskpipes.githubsim import Simulator
from taskpipes.models import Run, StageRun
from taskpipes.schedule import floor_minute
from tests.processes import metric_sum, scheduler, scrape, service_env, workers
from tests.queues import wait_until

EVERY_MINUTE = "* * * * *"
# Long enough for a few minute ticks, short enough that a bug fails rather than hangs.
DEADLINE_S = 330


def runs_by_tick(engine: Engine, pipeline: str) -> dict[datetime, str]:
    with engine.connect() as conn:
        rows = conn.execute(select(Run.tick, Run.status).where(Run.pipeline == pipeline))
        return {tick: status for tick, status in rows}


def test_two_schedulers_two_workers_one_run_per_tick(
    tmp_path: Path, postgres_url: str, rabbitmq: str, simulator: Simulator
) -> None:
    # Given two schedulers and two worker groups, github_top every minute
    migrate.upgrade(postgres_url)
    base = {"DATABASE_URL": postgres_url, "BROKER_URL": rabbitmq, "GITHUB_API_URL": simulator.url,
            "TASKPIPES_SCHEDULE_GITHUB_TOP": EVERY_MINUTE}  # fmt: skip
    envs = [service_env(tmp_path, **base) for _ in range(4)]
    engine = create_engine(postgres_url)
    started = datetime.now(UTC)

    with (
        workers(envs[0], tmp_path / "workers-a.log"),
        workers(envs[1], tmp_path / "workers-b.log"),
        scheduler(envs[2], tmp_path / "scheduler-a.log"),
        scheduler(envs[3], tmp_path / "scheduler-b.log"),
    ):
        # When three ticks have run
        def three_ticks_done() -> dict[datetime, str] | None:
            done = {t: s for t, s in runs_by_tick(engine, "github_top").items() if s == "succeeded"}
            return done if len(done) >= 3 else None

        done = wait_until(three_ticks_done, DEADLINE_S, "three github_top ticks")
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
    assert dict(stage_attempts) == {"fetch": 1, "normalize": 1, "store": 1, "aggregate": 1}
    assert scheduled >= 2 * len(ticks)  # both schedulers sent every tick
    assert duplicates >= len(ticks)  # and every second delivery was recognised


def test_scheduler_downtime_is_caught_up_per_policy(
    tmp_path: Path, postgres_url: str, rabbitmq: str, simulator: Simulator
) -> None:
    # Given one scheduler and workers, github_top (latest) and rollup (all) every minute
    migrate.upgrade(postgres_url)
    base = {"DATABASE_URL": postgres_url, "BROKER_URL": rabbitmq, "GITHUB_API_URL": simulator.url,
            "TASKPIPES_SCHEDULE_GITHUB_TOP": EVERY_MINUTE, "TASKPIPES_SCHEDULE_ROLLUP": EVERY_MINUTE}  # fmt: skip
    engine = create_engine(postgres_url)
    scheduler_env = service_env(tmp_path, **base)

    with workers(service_env(tmp_path, **base), tmp_path / "workers.log"):
        with scheduler(scheduler_env, tmp_path / "scheduler-1.log"):
            # When both pipelines have run their first tick
            def first_tick() -> datetime | None:
                top, rollup = runs_by_tick(engine, "github_top"), runs_by_tick(engine, "rollup")
                common = [
                    t for t, s in top.items() if s == "succeeded" and rollup.get(t) == "succeeded"
                ]
                return min(common) if common else None

            t1 = wait_until(first_tick, DEADLINE_S, "the first tick of both pipelines")
        # and the scheduler is down across the next two ticks
        missed = [t1 + timedelta(minutes=1), t1 + timedelta(minutes=2)]
        wait_until(
            lambda: datetime.now(UTC) > missed[1] + timedelta(seconds=5), 300, "two ticks to pass"
        )
        assert missed[0] not in runs_by_tick(engine, "github_top")

        with scheduler(scheduler_env, tmp_path / "scheduler-2.log"):
            # and it starts again
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
    assert "catch-up policy 'latest'" in reason
