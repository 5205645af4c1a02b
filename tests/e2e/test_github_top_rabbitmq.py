"""github_top in production shape: PostgreSQL, RabbitMQ, `dramatiq actors` in another process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from db import schema as migrate
from db.models import Repository, Snapshot
from githubsim import Simulator
from taskpipes.rabbitmq import queues as rabbit
from tests.clirun import run_cli
from tests.processes import service_env, taskpipes, workers
from tests.queues import wait_until

T0 = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)


@pytest.fixture
def production(tmp_path: Path, postgres_url: str, rabbitmq: str, simulator: Simulator):  # type: ignore[no-untyped-def]
    migrate.upgrade(postgres_url)
    env = service_env(
        tmp_path, DATABASE_URL=postgres_url, BROKER_URL=rabbitmq, GITHUB_API_URL=simulator.url
    )
    with workers(env, tmp_path / "workers.log"):
        yield env, create_engine(postgres_url)


def run(env: dict[str, str], simulator: Simulator, tick: datetime) -> str:
    simulator.set_clock(tick)
    result = taskpipes(["run", "github_top", "--at", tick.isoformat(), "--timeout", "90"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def counts(engine) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        snapshots = conn.scalar(select(func.count()).select_from(Snapshot))
        runs = conn.scalar(text("select count(*) from runs"))
    return snapshots, runs


def test_ticks_on_postgres_and_rabbitmq(production, simulator: Simulator) -> None:
    env, engine = production

    # Tick T stores 100 rows
    assert "succeeded" in run(env, simulator, T0)
    assert counts(engine) == (100, 1)

    # T again changes nothing
    assert "already done: nothing changed" in run(env, simulator, T0)
    assert counts(engine) == (100, 1)

    # A rename between ticks, then T+10m: 200 rows, one repository with the new name
    renamed = simulator.top(T0)[0]
    simulator.rename(renamed["full_name"], "moved-owner/new-name")
    assert "succeeded" in run(env, simulator, T0 + timedelta(minutes=10))
    assert counts(engine) == (200, 2)
    with engine.connect() as conn:
        name = conn.scalar(select(Repository.full_name).where(Repository.id == renamed["id"]))
        rows = conn.scalar(select(func.count()).where(Snapshot.repo_id == renamed["id"]))
    assert (name, rows) == ("moved-owner/new-name", 2)


def test_a_malformed_answer_exits_non_zero_naming_the_problem(
    production, simulator: Simulator
) -> None:
    env, engine = production
    simulator.set_clock(T0)
    simulator.add_fault("search", "malformed_json")

    result = taskpipes(["run", "github_top", "--at", T0.isoformat(), "--timeout", "90"], env)

    assert result.returncode == 1
    assert "failed" in result.stdout and "not valid JSON" in result.stdout
    assert counts(engine) == (0, 1)


def test_the_command_prints_each_failed_attempt_of_workers_elsewhere(
    production, simulator: Simulator
) -> None:
    # Given GitHub failing twice the same way, then answering
    env, engine = production
    simulator.set_clock(T0)
    simulator.add_fault("search", "server_error", times=2)

    # When the run is asked for while `dramatiq actors` runs in another process
    result = taskpipes(["run", "github_top", "--at", T0.isoformat(), "--timeout", "90"], env)

    # Then the command printed each failed attempt the workers recorded, and succeeded
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if "github_top stage fetch" in line]
    cause = "TransientError: GitHub search: HTTP 500 (GET 127.0.0.1:"
    assert [line.split(", run ")[0] for line in lines] == ["github_top stage fetch"] * 2
    assert [f"attempt {k} failed: {cause}" in line for k, line in enumerate(lines, 1)] == [True] * 2


def test_without_workers_the_run_says_so_and_waits_in_rabbitmq(
    tmp_path: Path, postgres_url: str, rabbitmq: str, simulator: Simulator
) -> None:
    migrate.upgrade(postgres_url)
    simulator.set_clock(T0)
    env = service_env(
        tmp_path, DATABASE_URL=postgres_url, BROKER_URL=rabbitmq, GITHUB_API_URL=simulator.url
    )
    command = ["run", "github_top", "--at", T0.isoformat()]

    # Given no worker consumes the queue, a run warns, waits its timeout and fails
    alone = taskpipes([*command, "--timeout", "1"], env)

    assert alone.returncode == 1
    assert "no worker consumes queue 'github_top' now: start `dramatiq actors`" in alone.stderr
    assert "github_top tick" in alone.stdout and ": queued" in alone.stdout
    assert "the workers go on" in alone.stdout

    # When a worker starts, the message that waited in RabbitMQ is the run it does
    with workers(env, tmp_path / "workers.log"):
        wait_until(lambda: rabbit.consumer_count(rabbitmq, "github_top") > 0, 60, "a consumer")
        waited = taskpipes([*command, "--timeout", "90"], env)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert "no worker consumes" not in waited.stderr
    assert counts(create_engine(postgres_url)) == (100, 1)


def test_a_bad_at_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli(["run", "github_top", "--at", "yesterday"], service_env(tmp_path), tmp_path)

    assert result.returncode == 2
    assert "invalid time 'yesterday': expected ISO 8601" in result.stderr


@pytest.mark.parametrize("timeout", ["-1", "0", "nan", "soon"])
def test_a_bad_timeout_is_a_usage_error(tmp_path: Path, timeout: str) -> None:
    args = ["run", "github_top", "--timeout", timeout]
    result = run_cli(args, service_env(tmp_path), tmp_path)

    assert result.returncode == 2
    assert "argument --timeout: expected" in result.stderr and timeout in result.stderr
