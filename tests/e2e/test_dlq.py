"""`taskpipes dlq` against real RabbitMQ and PostgreSQL, with workers in another process."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from db import schema as migrate
from db.models import Snapshot
from githubsim import Simulator
from taskpipes.store.tables import Run
from tests.clirun import run_cli
from tests.processes import service_env, taskpipes, workers
from tests.queues import count, dead_message, declare, peek, publish, wait_until
from tests.tcpproxy import TcpProxy

T0 = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)
# Six quick attempts (10 ms backoff, doubling) dead-letter a message in under a second.
FAST_RETRIES = {"TASKPIPES_RETRY_MIN_BACKOFF_MS": "10"}
# Long enough for `taskpipes run` to send its tick; the run cannot finish before the
# replay, so the command always waits this long and exits 1.
SEND_ONLY_S = "1"


def run_state(engine) -> tuple[str, int]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        status = conn.scalar(select(Run.status).where(Run.pipeline == "github_top"))
        snapshots = conn.scalar(select(func.count()).select_from(Snapshot))
    return status, snapshots


def test_a_run_dead_lettered_while_the_database_was_down_succeeds_after_replay(
    tmp_path: Path, postgres_url: str, rabbitmq: str, simulator: Simulator
) -> None:
    migrate.upgrade(postgres_url)
    engine = create_engine(postgres_url)
    simulator.set_clock(T0)
    env = service_env(
        tmp_path, DATABASE_URL=postgres_url, BROKER_URL=rabbitmq, GITHUB_API_URL=simulator.url
    )
    with TcpProxy(5432) as proxy:
        worker_env = {**env, **FAST_RETRIES, "DATABASE_URL": proxy.proxied(postgres_url)}
        # Given workers whose database is unreachable
        proxy.stop()
        with workers(worker_env, tmp_path / "workers.log"):
            # When a run is requested, its tick message fails every attempt and dead-letters
            run = ["run", "github_top", "--at", T0.isoformat(), "--timeout", SEND_ONLY_S]
            result = taskpipes(run, env)
            assert result.returncode == 1, result.stdout + result.stderr
            wait_until(lambda: count(rabbitmq, "github_top.XQ") == 1, 60, "the dead letter")

            # Then `dlq list` shows it, the queue keeps it, and the run is still queued
            listed = taskpipes(["dlq", "list", "--json"], env)
            assert listed.returncode == 0, listed.stderr
            [letter] = json.loads(listed.stdout)
            assert letter["actor"] == "github_top_tick"
            assert letter["tick"] == T0.isoformat()
            assert letter["failures"] == 5
            assert "OperationalError" in letter["last_error"]
            table = taskpipes(["dlq", "list"], env).stdout
            assert letter["message_id"] in table and "github_top.XQ" in table
            assert count(rabbitmq, "github_top.XQ") == 1
            assert run_state(engine) == ("queued", 0)

            # When the database is back and the message is replayed
            proxy.start()
            replayed = taskpipes(["dlq", "replay", "--all"], env)

            # Then the run succeeds with the full snapshot and nothing is dead any more
            assert replayed.returncode == 0, replayed.stderr
            assert f"replayed {letter['message_id']} github_top_tick" in replayed.stdout
            wait_until(lambda: run_state(engine)[0] == "succeeded", 90, "the replayed run")
    assert run_state(engine) == ("succeeded", 100)
    assert count(rabbitmq, "github_top.XQ") == 0
    engine.dispose()


@pytest.fixture
def dead_letters(tmp_path: Path, rabbitmq: str, postgres_url: str):  # type: ignore[no-untyped-def]
    """Two dead github_top stage messages in RabbitMQ, no workers."""
    migrate.upgrade(postgres_url)
    declare(rabbitmq, "github_top")
    messages = [dead_message("github_top_store", "github_top") for _ in range(2)]
    for message in messages:
        publish(rabbitmq, "github_top.XQ", message)
    env = service_env(tmp_path, DATABASE_URL=postgres_url, BROKER_URL=rabbitmq)
    return env, [m.message_id for m in messages]


def test_purge_by_id_removes_only_that_message(dead_letters, rabbitmq: str) -> None:
    env, (first, second) = dead_letters

    purged = taskpipes(["dlq", "purge", "--id", first], env)

    assert purged.returncode == 0, purged.stderr
    assert f"purged {first} github_top_store" in purged.stdout
    listed = json.loads(taskpipes(["dlq", "list", "--json"], env).stdout)
    assert [(d["message_id"], d["failures"], d["last_error"]) for d in listed] == [
        (second, 5, "ValueError: boom")
    ]
    assert count(rabbitmq, "github_top.XQ") == 1


def test_purge_all_drops_every_dead_letter_and_nothing_else(dead_letters, rabbitmq: str) -> None:
    env, ids = dead_letters
    # A live message next to them, which purge must leave alone
    publish(rabbitmq, "github_top", dead_message("github_top_tick", "github_top"))

    purged = taskpipes(["dlq", "purge", "--all"], env)

    assert purged.returncode == 0, purged.stderr
    named = [line.split()[1] for line in purged.stdout.splitlines() if line.startswith("purged ")]
    assert sorted(set(named) & set(ids)) == sorted(ids), purged.stdout
    assert json.loads(taskpipes(["dlq", "list", "--json"], env).stdout) == []
    assert (count(rabbitmq, "github_top.XQ"), count(rabbitmq, "github_top")) == (0, 1)


def test_an_unknown_id_exits_1_and_changes_nothing(dead_letters, rabbitmq: str) -> None:
    env, _ = dead_letters

    for action in ("replay", "purge"):
        result = taskpipes(["dlq", action, "--id", "no-such-message"], env)
        assert result.returncode == 1
        assert "no dead message no-such-message" in result.stderr

    assert count(rabbitmq, "github_top.XQ") == 2
    assert count(rabbitmq, "github_top") == 0


def test_replay_by_id_resets_retries_and_resumes_the_run(
    dead_letters, rabbitmq: str, postgres_url: str
) -> None:
    env, (first, second) = dead_letters
    # Given a failed run whose fetch stage is done
    engine = create_engine(postgres_url)
    with Session(engine) as session, session.begin():
        run = Run(pipeline="github_top", tick=T0, status="failed", attempts=1, error="store: boom")
        session.add(run)
        session.flush()
        run_id = run.id
    publish(
        rabbitmq,
        "github_top.XQ",
        dead_message("github_top_store", "github_top", taskpipes_run=run_id),
    )

    # When the stage message is replayed
    listed = json.loads(taskpipes(["dlq", "list", "--json"], env).stdout)
    [letter] = [d for d in listed if d["run_id"] == run_id]
    result = taskpipes(["dlq", "replay", "--id", letter["message_id"]], env)

    # Then it is back on its queue, retries reset, and the run is running again
    assert result.returncode == 0, result.stderr
    assert f"tick {T0.isoformat()}" in result.stdout
    assert count(rabbitmq, "github_top.XQ") == 2
    assert count(rabbitmq, "github_top") == 1
    sent = peek(rabbitmq, "github_top")
    assert sent["message_id"] == letter["message_id"]
    assert sent["options"] == {"retries": 0, "taskpipes_run": run_id}
    with engine.connect() as conn:
        assert conn.execute(select(Run.status, Run.error).where(Run.id == run_id)).one() == (
            "running",
            None,
        )
    engine.dispose()


def test_dlq_needs_a_broker(tmp_path: Path) -> None:
    result = run_cli(["dlq", "list"], service_env(tmp_path), tmp_path)

    assert result.returncode == 2
    assert "BROKER_URL is not set" in result.stderr
