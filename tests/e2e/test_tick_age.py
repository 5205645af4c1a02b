"""Periodic messages: a retry is never dropped for its age, a stale first delivery is."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dramatiq import Broker, Message, Middleware
from sqlalchemy import create_engine, func, select

import actors
from db import schema as migrate
from db.models import Snapshot
from pipelines.github_top import github_top
from taskpipes.declare.schedule import floor_tick
from taskpipes.runtime.runner import ensure_workers
from taskpipes.store.database import begin
from taskpipes.store.tables import Run
from tests.app import snapshot_count, wait_for_run
from tests.integration.test_github_top import FailFirstSend
from tests.processes import metric_sum, scrape, service_env, workers
from tests.queues import declare, publish, wait_until
from tests.tcpproxy import TcpProxy

assert github_top.schedule is not None
TICK_SCHEDULE = github_top.schedule


def test_a_failed_periodic_run_retried_past_30s_still_runs(app_env, sqlite_url, simulator) -> None:
    # Given a scheduler's tick sent 40 s ago (periodiq's own middleware drops anything past 30 s)
    app_env(sqlite_url)
    scheduled_at = datetime.now(UTC) - timedelta(seconds=40)
    tick = floor_tick(TICK_SCHEDULE.spec, scheduled_at)
    simulator.set_clock(tick)
    breaker = FailFirstSend("github_top_fetch")  # the tick's first attempt fails
    actors.broker.add_middleware(breaker)
    ensure_workers(actors.broker)

    # When it is delivered, fails, and is retried later
    try:
        actors.broker.get_actor("github_top_tick").send_with_options(
            scheduled_at=scheduled_at.isoformat()
        )
        run = wait_for_run("github_top", tick)
    finally:
        actors.broker.middleware.remove(breaker)

    # Then the retry ran and the run succeeded
    assert breaker.failed == 1
    assert run.status == "succeeded"
    assert snapshot_count() == 100


class RecordSkips(Middleware):
    """The ids of messages a middleware told the worker to skip (SkipMessage)."""

    def __init__(self) -> None:
        self.skipped: list[str] = []

    def after_skip_message(self, broker: Broker, message: Message[Any]) -> None:
        self.skipped.append(message.message_id)


def test_a_first_delivery_older_than_its_period_is_dropped(
    app_env, sqlite_url, simulator, caplog: pytest.LogCaptureFixture
) -> None:
    app_env(sqlite_url)
    ensure_workers(actors.broker)
    stale = datetime.now(UTC) - timedelta(minutes=11)  # github_top's period is 10 minutes
    recorder = RecordSkips()
    actors.broker.middleware.append(recorder)

    try:
        with caplog.at_level(logging.WARNING, logger="taskpipes"):
            message = actors.broker.get_actor("github_top_tick").send_with_options(
                scheduled_at=stale.isoformat()
            )
            actors.broker.join("github_top", timeout=30_000)
    finally:
        actors.broker.middleware.remove(recorder)

    # Then the worker was told to skip this very message, and said why
    assert recorder.skipped == [message.message_id]
    assert f"dropping github_top_tick tick {stale.isoformat()}" in caplog.text
    with begin() as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 0


def test_a_periodic_retry_past_30s_runs_with_rabbitmq_and_workers(
    tmp_path: Path, postgres_url: str, rabbitmq: str, simulator
) -> None:
    # Given workers whose database is down, and a scheduler's tick sent 40 s ago
    migrate.upgrade(postgres_url)
    env = service_env(tmp_path, DATABASE_URL=postgres_url, BROKER_URL=rabbitmq,
                      GITHUB_API_URL=simulator.url, TASKPIPES_RETRY_MIN_BACKOFF_MS="500")  # fmt: skip
    scheduled_at = datetime.now(UTC) - timedelta(seconds=40)
    tick = floor_tick(TICK_SCHEDULE.spec, scheduled_at)
    simulator.set_clock(tick)
    engine = create_engine(postgres_url)
    with TcpProxy(5432) as proxy:
        proxy.stop()
        worker_env = {**env, "DATABASE_URL": proxy.proxied(postgres_url)}
        with workers(worker_env, tmp_path / "workers.log"):
            message = actors.broker.get_actor("github_top_tick").message_with_options(
                scheduled_at=scheduled_at.isoformat()
            )
            declare(rabbitmq, message.queue_name)
            publish(rabbitmq, message.queue_name, message)

            # When its first attempt fails and the database comes back before the retry
            def failed_once() -> bool:
                try:
                    text = scrape(int(env["dramatiq_prom_port"]))
                except OSError:
                    return False  # the exporter is still starting
                return (
                    metric_sum(text, "dramatiq_message_errors_total", actor_name="github_top_tick")
                    >= 1
                )

            wait_until(failed_once, 60, "the tick's first attempt to fail")
            proxy.start()

            # Then the retry, well past periodiq's 30 s, runs and the run succeeds
            def status() -> str | None:
                with engine.connect() as conn:
                    return conn.scalar(select(Run.status).where(Run.pipeline == "github_top"))

            wait_until(lambda: status() == "succeeded", 90, "the retried run")
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).where(Snapshot.tick == tick)) == 100
    engine.dispose()
