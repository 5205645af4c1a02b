"""Periodic messages: a retry is never dropped for its age, a stale first delivery is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

import actors
from actors.github_top import SCHEDULE, github_top_tick
from db.models import Run
from db.session import begin
from pipelines.schedule import floor_tick
from taskpipes.runner import ensure_workers
from tests.app import snapshot_count, wait_for_run
from tests.test_github_top import FailFirstSend


def test_a_failed_periodic_run_retried_past_30s_still_runs(app_env, sqlite_url, simulator) -> None:
    # Given a scheduler's tick sent 40 s ago (periodiq's own middleware drops anything past 30 s)
    app_env(sqlite_url)
    scheduled_at = datetime.now(UTC) - timedelta(seconds=40)
    tick = floor_tick(SCHEDULE.spec, scheduled_at)
    simulator.set_clock(tick)
    breaker = FailFirstSend("github_top_fetch")  # the tick's first attempt fails
    actors.broker.add_middleware(breaker)
    ensure_workers(actors.broker)

    # When it is delivered, fails, and is retried later
    try:
        github_top_tick.send_with_options(scheduled_at=scheduled_at.isoformat())
        run = wait_for_run("github_top", tick)
    finally:
        actors.broker.middleware.remove(breaker)

    # Then the retry ran and the run succeeded
    assert breaker.failed == 1
    assert run.status == "succeeded"
    assert snapshot_count() == 100


def test_a_first_delivery_older_than_its_period_is_dropped(app_env, sqlite_url, simulator) -> None:
    app_env(sqlite_url)
    ensure_workers(actors.broker)
    stale = datetime.now(UTC) - timedelta(minutes=11)  # github_top's period is 10 minutes

    github_top_tick.send_with_options(scheduled_at=stale.isoformat())
    actors.broker.join("github_top", timeout=30_000)

    with begin() as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 0
