"""Scenario 4: dependencies that hang instead of failing.

- A GitHub answer that stalls forever (search, then a stargazers page) is cut by the
  client's read timeout (TASKPIPES_GITHUB_TIMEOUT), and the retry completes the run.
- A row lock held longer than a stage's time limit (the stargazers wave's 2 minutes, on the
  shared pacing row) makes the stage fail and retry, and never wedges the worker's thread:
  with a single thread, another pipeline's run completes while the lock is still held.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from githubsim import Simulator
from tests.faults import ledger
from tests.faults.deployment import PATIENCE_S, finished
from tests.faults.holds import blocked_by, dsn
from tests.faults.report import Row, assert_nothing_lost
from tests.queues import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1800)]

T0 = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)
# The client's read timeout for these tests, seconds.
GITHUB_TIMEOUT_S = 3
# "Forever", as far as a run is concerned: the simulator wakes it when the test ends.
FOREVER_S = 3600
# The stargazers wave's time limit (actors.stargazers SHORT_TIME_LIMIT_MS), plus patience.
WAVE_TIME_LIMIT_S = 120
STARGAZER_RATES = ("--rate", "1000000", "--api-rate", "100000000")


def attempts(d, pipeline: str, stage: str) -> int:  # type: ignore[no-untyped-def]
    return int(
        d.scalar(
            "SELECT max(s.attempts) FROM stage_runs s JOIN runs r ON r.id = s.run_id"
            " WHERE r.pipeline = :p AND s.stage = :s",
            p=pipeline,
            s=stage,
        )
        or 0
    )


def test_a_github_answer_that_never_comes_is_cut_by_the_client_timeout(
    deploy, postgres_url: str, rabbitmq: str, simulator: Simulator, record_row
) -> None:
    simulator.set_clock(T0)
    d = deploy(postgres_url, rabbitmq, TASKPIPES_GITHUB_TIMEOUT=str(GITHUB_TIMEOUT_S))
    repo = simulator.top(T0)[-1]["full_name"]
    # Given a search answer and a stargazers page that stall forever
    simulator.add_fault("search", "stall", seconds=FOREVER_S)
    simulator.add_fault("stargazers", "stall", seconds=FOREVER_S)
    started = time.monotonic()
    with d.workers():
        # When both pipelines run
        finished(d.start("run", "github_top", "--at", T0.isoformat(), "--timeout", "600"))
        stargazers = d.start(
            "run", "stargazers", "--repo", repo, "--at", T0.isoformat(), *STARGAZER_RATES
        )
        finished(stargazers, timeout=600)
    elapsed = time.monotonic() - started
    simulator.state.wake_stalled()
    # Then each stalled request was cut and retried, and both runs stored everything once
    run_id = d.run_id("stargazers", T0)
    assert run_id is not None
    tally = ledger.github_top(d.engine, [T0]) + ledger.stargazers(d.engine, [run_id])
    timeouts = d.log("workers").read_text(errors="replace").count("Timeout")
    row = Row(
        "4a GitHub answer stalled forever (search, stargazers page)",
        tally,
        recover_s=elapsed,
        notes=f"client timeout {GITHUB_TIMEOUT_S} s; fetch attempts "
        f"{attempts(d, 'github_top', 'fetch')}; {timeouts} timeouts logged",
    )
    record_row(row)
    assert_nothing_lost(row)
    assert attempts(d, "github_top", "fetch") >= 2
    assert not simulator.state.faults.pending()


def test_a_row_lock_past_the_time_limit_fails_the_stage_and_frees_the_thread(
    deploy, postgres_url: str, rabbitmq: str, simulator: Simulator, record_row
) -> None:
    simulator.set_clock(T0)
    d = deploy(postgres_url, rabbitmq)
    repo = simulator.top(T0)[-1]["full_name"]
    log = d.log("workers")
    with psycopg.connect(dsn(postgres_url), autocommit=True) as setup:
        setup.execute(
            "INSERT INTO stargazer_pacing (name, next_wave_at) VALUES ('stargazers', now())"
            " ON CONFLICT DO NOTHING"
        )
    # Given one worker thread, and the row every stargazers wave locks held by someone else
    holder = psycopg.connect(dsn(postgres_url))
    holder.execute("SELECT * FROM stargazer_pacing FOR UPDATE")
    with d.workers(threads=1):
        waiter = d.start(
            "run", "stargazers", "--repo", repo, "--at", T0.isoformat(), *STARGAZER_RATES
        )
        locked = time.monotonic()
        wait_until(lambda: blocked_by(postgres_url, holder.info.backend_pid), PATIENCE_S, "a wave")
        # When the lock is held past the wave's time limit
        top = d.start("run", "github_top", "--at", T0.isoformat(), "--timeout", "600")
        # Then the wave fails and the thread is free: the other pipeline's run completes
        # on that one thread while the lock is still held
        finished(top, timeout=600)
        wait_until(lambda: lock_timeouts(log), PATIENCE_S, "the wave to fail on the lock")
        wait_until(
            lambda: time.monotonic() - locked > WAVE_TIME_LIMIT_S + 10, PATIENCE_S, "the limit"
        )
        held_s = time.monotonic() - locked
        failed_waves = lock_timeouts(log)
        holder.rollback()
        holder.close()
        released = time.monotonic()
        # and once the lock goes, the retried wave completes the stargazers run
        finished(waiter, timeout=600)
        recovered = time.monotonic() - released
    run_id = d.run_id("stargazers", T0)
    assert run_id is not None
    row = Row(
        "4b row lock held past a stage's time limit",
        ledger.stargazers(d.engine, [run_id]) + ledger.github_top(d.engine, [T0]),
        recover_s=recovered,
        notes=f"lock held {held_s:.0f} s (wave time limit {WAVE_TIME_LIMIT_S} s), "
        f"{failed_waves} wave attempts failed on it; a github_top run completed meanwhile "
        "on the only worker thread",
    )
    record_row(row)
    assert_nothing_lost(row)


def lock_timeouts(log: Path) -> int:
    """Stage attempts PostgreSQL stopped with its lock timeout, as the worker logged them."""
    return log.read_text(errors="replace").count("LockNotAvailable) canceling statement")
