"""A message that kills its worker is dead-lettered after 3 crashes; other work goes on."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import dramatiq
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from db import schema as migrate
from db.models import Snapshot
from githubsim import Simulator
from taskpipes.rabbitmq.queues import queue_depths
from taskpipes.store import runs
from taskpipes.store.tables import Run
from tests.processes import VENV_BIN, service_env, supervised, taskpipes
from tests.queues import broker_for

T0 = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)
DEADLINE_S = 120
# The message id the crash test's run was claimed with.
CLAIMING_MESSAGE = "crash-test"


def dead_letters(broker_url: str) -> int:
    return queue_depths(broker_url, ["default"])["default"].dead


def claim_run(url: str) -> int:
    with Session(create_engine(url)) as session, session.begin():
        return runs.claim(session, "maintenance", T0, CLAIMING_MESSAGE, explicit=True).run_id  # type: ignore[return-value]


def send_crashing_message(broker_url: str, run_id: int, as_tick: bool) -> None:
    """A stage message names its run in its options; a tick message (whose first stage may
    work in it) is the run's own message."""
    broker = broker_for(broker_url)
    try:
        broker.declare_queue("default")
        message = dramatiq.Message(
            queue_name="default",
            actor_name="kill_own_worker",
            args=(run_id,),
            kwargs={},
            options={} if as_tick else {runs.RUN_OPTION: run_id},
            message_id=CLAIMING_MESSAGE if as_tick else "a-stage-message",
        )
        broker.enqueue(message)
    finally:
        broker.close()


@pytest.mark.parametrize("as_tick", [False, True], ids=["stage message", "tick message"])
def test_a_crash_looping_message_ends_dead_and_other_work_goes_on(
    tmp_path: Path, postgres_url: str, rabbitmq: str, simulator: Simulator, as_tick: bool
) -> None:
    # Given supervised workers (dramatiq's master exits when a child dies) and a run
    migrate.upgrade(postgres_url)
    env = service_env(
        tmp_path, DATABASE_URL=postgres_url, BROKER_URL=rabbitmq, GITHUB_API_URL=simulator.url
    )
    args = [
        str(VENV_BIN / "dramatiq"),
        "actors",
        "tests.crash_actors",
        "--processes",
        "1",
        "--threads",
        "2",
    ]
    run_id = claim_run(postgres_url)

    with supervised(args, env, tmp_path / "workers.log") as exits:
        # When a message that kills its worker is sent
        send_crashing_message(rabbitmq, run_id, as_tick)
        deadline = time.monotonic() + DEADLINE_S
        while dead_letters(rabbitmq) == 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        # and other work is asked for meanwhile
        simulator.set_clock(T0)
        result = taskpipes(["run", "github_top", "--at", T0.isoformat(), "--timeout", "90"], env)

    # Then it is dead-lettered after 3 crashes, its run is dead, and the other run succeeded
    assert dead_letters(rabbitmq) == 1
    assert len(exits) == 3, exits
    with Session(create_engine(postgres_url)) as session:
        run = session.get_one(Run, run_id)
        snapshots = session.scalar(select(func.count()).select_from(Snapshot))
    assert run.status == "dead"
    assert "kill_own_worker killed its worker 3 times" in run.error
    assert result.returncode == 0, result.stdout + result.stderr
    assert snapshots == 100
