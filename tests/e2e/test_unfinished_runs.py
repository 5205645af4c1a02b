"""A run that could not be sent, or that `taskpipes run` stopped waiting for, never blocks
its tick: the next run of the same tick does the work (SQLite, the CLI in its own process)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, func, select

from db import schema as migrate
from db.models import Snapshot
from githubsim import Simulator
from taskpipes.store.tables import Run
from tests.processes import free_port, service_env, taskpipes

T0 = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)
RUN_T0 = ["run", "github_top", "--at", T0.isoformat()]


def runs_and_snapshots(database_url: str) -> tuple[list[tuple[str, str | None]], int]:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        runs = [tuple(row) for row in conn.execute(select(Run.status, Run.error))]
        snapshots = conn.scalar(select(func.count()).select_from(Snapshot))
    engine.dispose()
    return runs, snapshots or 0  # type: ignore[return-value]


def test_an_unreachable_broker_is_one_line_and_leaves_no_run_behind(
    tmp_path: Path, sqlite_url: str, simulator: Simulator
) -> None:
    migrate.upgrade(sqlite_url)
    simulator.set_clock(T0)
    env = service_env(tmp_path, DATABASE_URL=sqlite_url, GITHUB_API_URL=simulator.url)
    closed = f"amqp://guest:brokerpassword@127.0.0.1:{free_port()}/"

    refused = taskpipes([*RUN_T0, "--timeout", "30"], {**env, "BROKER_URL": closed})

    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "broker error: cannot reach RabbitMQ at 127.0.0.1:" in refused.stderr
    assert "Traceback" not in refused.stderr and "brokerpassword" not in refused.stderr
    # The record of the run went back with the failed send: nothing waits for a lost message.
    assert runs_and_snapshots(sqlite_url) == ([], 0)
    listed = taskpipes(["dlq", "list"], {**env, "BROKER_URL": closed})
    assert listed.returncode == 1 and listed.stderr.count("\n") == 1, listed.stderr
    assert "Connection refused" in listed.stderr and "brokerpassword" not in listed.stderr

    again = taskpipes([*RUN_T0, "--timeout", "90"], env)

    assert again.returncode == 0, again.stdout + again.stderr
    assert runs_and_snapshots(sqlite_url) == ([("succeeded", None)], 100)


def test_a_run_given_up_in_process_is_failed_and_the_tick_runs_again(
    tmp_path: Path, sqlite_url: str, simulator: Simulator
) -> None:
    migrate.upgrade(sqlite_url)
    simulator.set_clock(T0)
    unreachable_github = f"http://127.0.0.1:{free_port()}"
    env = service_env(tmp_path, DATABASE_URL=sqlite_url, GITHUB_API_URL=unreachable_github)

    # GitHub refuses every connection, so fetch keeps retrying until the wait ends.
    given_up = taskpipes([*RUN_T0, "--timeout", "2"], env)

    assert given_up.returncode == 1
    assert "gave up waiting after 2 s" in given_up.stdout
    assert "last error: fetch: TransientError: GitHub search: ConnectionError" in given_up.stdout
    assert "Traceback" not in given_up.stderr
    [(status, error)], snapshots = runs_and_snapshots(sqlite_url)
    assert (status, snapshots) == ("failed", 0)
    assert error is not None and "in-process workers do not outlive the command" in error

    again = taskpipes([*RUN_T0, "--timeout", "90"], {**env, "GITHUB_API_URL": simulator.url})

    assert again.returncode == 0, again.stdout + again.stderr
    assert runs_and_snapshots(sqlite_url) == ([("succeeded", None)], 100)
