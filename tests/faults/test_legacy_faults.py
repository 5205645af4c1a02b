"""Long fault scenarios (`make faults`): a worker, the broker or the database dies in the
middle of a run.

Each scenario checks the promise that matters: the run completes, exactly once, with
exactly one snapshot of 100 rows.
"""

from __future__ import annotations

import os
import signal
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine

from db import migrate
from db.models import Run, Snapshot, StageRun
from taskpipes.githubsim import Simulator
from tests.processes import VENV_BIN, service_env, workers
from tests.queues import wait_until
from tests.tcpproxy import TcpProxy

pytestmark = pytest.mark.faults

T0 = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)


def stage_status(engine: Engine, stage: str) -> str | None:
    with engine.connect() as conn:
        return conn.scalar(select(StageRun.status).where(StageRun.stage == stage))


def run_status(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return conn.scalar(select(Run.status).where(Run.pipeline == "github_top"))


def enqueue(env: dict[str, str]) -> subprocess.Popen[str]:
    """`taskpipes run` in the background: it records the run, sends the tick and waits."""
    args = [
        str(VENV_BIN / "taskpipes"),
        "run",
        "github_top",
        "--at",
        T0.isoformat(),
        "--timeout",
        "240",
    ]
    return subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def assert_completed_once(engine: Engine) -> None:
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Snapshot)) == 100
        assert conn.scalar(select(func.count()).select_from(Run)) == 1
        stages = dict(conn.execute(select(StageRun.stage, StageRun.status)).all())
    assert stages == dict.fromkeys(("fetch", "normalize", "store", "aggregate"), "succeeded")


@pytest.fixture
def setup(tmp_path: Path, postgres_url: str, rabbitmq: str, simulator: Simulator):  # type: ignore[no-untyped-def]
    migrate.upgrade(postgres_url)
    simulator.set_clock(T0)
    env = service_env(
        tmp_path, DATABASE_URL=postgres_url, BROKER_URL=rabbitmq, GITHUB_API_URL=simulator.url
    )
    engine = create_engine(postgres_url)
    yield env, engine
    engine.dispose()


def test_a_worker_killed_mid_fetch_loses_nothing(
    setup, simulator: Simulator, tmp_path: Path
) -> None:
    env, engine = setup
    # Given a fetch that takes a while
    simulator.add_fault("search", "stall", seconds=4)
    with workers(env, tmp_path / "workers-1.log") as first:
        waiter = enqueue(env)
        wait_until(lambda: stage_status(engine, "fetch") == "running", 60, "the fetch to start")
        # When the worker is SIGKILLed in the middle of it (an OOM kill)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
    # Then a new worker gets the unacknowledged message again and completes the run
    with workers(env, tmp_path / "workers-2.log"):
        output, _ = waiter.communicate(timeout=240)
    assert waiter.returncode == 0, output
    assert_completed_once(engine)


def test_a_broker_restart_mid_run_loses_nothing(
    setup, simulator: Simulator, tmp_path: Path
) -> None:
    env, engine = setup
    simulator.add_fault("search", "stall", seconds=6)
    with workers(env, tmp_path / "workers.log"):
        waiter = enqueue(env)
        wait_until(lambda: stage_status(engine, "fetch") == "running", 60, "the fetch to start")
        # When RabbitMQ goes away and comes back while the fetch is in flight
        subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, timeout=120)
        subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, timeout=120)
        # Then the workers reconnect and the run completes exactly once
        wait_until(lambda: run_status(engine) == "succeeded", 240, "the run after the restart")
        output, _ = waiter.communicate(timeout=240)
    assert waiter.returncode == 0, output
    assert_completed_once(engine)


def test_a_database_outage_mid_fetch_loses_nothing(
    setup, simulator: Simulator, postgres_url: str, tmp_path: Path
) -> None:
    env, engine = setup
    simulator.add_fault("search", "stall", seconds=4)
    log = tmp_path / "workers.log"
    with TcpProxy(5432) as proxy:
        # Given workers that reach PostgreSQL through a proxy that can cut them off
        with workers({**env, "DATABASE_URL": proxy.proxied(postgres_url)}, log):
            waiter = enqueue(env)
            wait_until(lambda: stage_status(engine, "fetch") == "running", 60, "the fetch")
            # When the database goes away while the fetch is in flight, so that recording
            # its answer fails, and comes back after the workers saw it fail
            proxy.stop()
            wait_until(lambda: "OperationalError" in log.read_text(), 60, "a failed write")
            proxy.start()
            # Then a retry completes the run, exactly once
            output, _ = waiter.communicate(timeout=240)
    assert waiter.returncode == 0, output
    assert_completed_once(engine)
    with engine.connect() as conn:
        fetches = conn.scalar(select(StageRun.attempts).where(StageRun.stage == "fetch"))
    assert fetches is not None and fetches >= 2  # the outage cost the fetch an attempt
