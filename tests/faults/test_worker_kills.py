"""Scenario 1: `dramatiq actors` SIGKILLed (an OOM kill) inside every stage of every
pipeline in turn, at random moments, under a restart loop; nothing lost, nothing twice.

Each kill is aimed at one stage: the stage is kept in progress from outside (a stalled
GitHub answer, or a test transaction locking a table the stage needs), the test sees it
waiting there, waits a random moment more and kills the worker's whole process group.
The seed is printed; FAULTS_SEED=N replays a run.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from githubsim import Simulator
from tests.faults import ledger
from tests.faults.deployment import PATIENCE_S, Deployment, finished
from tests.faults.holds import RowHold, TableLock, blocked_by, waiting_on
from tests.faults.report import Row, assert_nothing_lost
from tests.processes import Supervisor
from tests.queues import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1800)]

T0 = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)
# Rounds of kills: each round kills every stage of every pipeline once (8 kills).
ROUNDS = 3
# The longest random wait between seeing a stage held and killing it.
MAX_KILL_DELAY_S = 2.0
# Stars per second and GitHub requests per hour for the stargazers runs: no pacing wait.
STARGAZER_RATES = ("--rate", "1000000", "--api-rate", "100000000")


@dataclass
class KillLog:
    """Every kill: where it landed and how long the stage took to complete afterwards."""

    rng: random.Random
    supervisor: Supervisor
    kills: list[str] = field(default_factory=list)
    recoveries: list[float] = field(default_factory=list)

    def strike(self, where: str, held: Callable[[], object]) -> float:
        """Wait until `held()` says the stage is in progress, a random moment more, then
        kill the workers; returns the moment of the kill."""
        wait_until(held, PATIENCE_S, f"{where} to be in progress")
        time.sleep(self.rng.uniform(0, MAX_KILL_DELAY_S))
        assert held(), f"{where} finished before the kill"
        self.supervisor.kill()
        self.kills.append(where)
        return time.monotonic()

    def recovered(self, since: float) -> None:
        self.recoveries.append(time.monotonic() - since)


def faults_left(simulator: Simulator) -> int:
    """Requests the simulator's pending faults will still spoil (a stall counts once it
    begins)."""
    return sum(int(fault["times"]) for fault in simulator.state.faults.pending())


def fault_taken(simulator: Simulator, left: int = 0) -> Callable[[], bool]:
    return lambda: faults_left(simulator) <= left


def kill_github_top(d: Deployment, log: KillLog, tick: datetime) -> None:
    url = d.database_url
    stall_s = PATIENCE_S
    d.simulator.set_clock(tick)
    # fetch: its first GitHub answer stalls, and so does its retry's (kept for normalize).
    d.simulator.add_fault("search", "stall", times=2, seconds=stall_s)
    later = [TableLock(url, "snapshots"), TableLock(url, "latest_ranking")]
    waiter = d.start("run", "github_top", "--at", tick.isoformat(), "--timeout", "900")
    killed = log.strike("github_top fetch", fault_taken(d.simulator, left=1))
    d.simulator.state.wake_stalled()
    # normalize: the retried fetch finishes (its answer and its record commit together),
    # then normalize reads the answer and waits to record itself: its stage row is held.
    run_id = wait_until(lambda: d.run_id("github_top", tick), PATIENCE_S, "the run")
    wait_until(fault_taken(d.simulator), PATIENCE_S, "the retried fetch")
    log.recovered(killed)
    row = {"run_id": run_id, "stage": "normalize", "status": "running", "attempts": 0,
           "rows_written": 0}  # fmt: skip
    normalize_row = RowHold(url, "stage_runs", row)
    d.simulator.state.wake_stalled()
    d.wait_stage(run_id, "fetch")
    killed = log.strike("github_top normalize", lambda: blocked_by(url, normalize_row.pid))
    normalize_row.release()
    # store, then aggregate: each waits on its own table's lock.
    for stage, lock in zip(("store", "aggregate"), later, strict=True):
        d.wait_stage(run_id, _before(stage))
        log.recovered(killed)
        killed = log.strike(f"github_top {stage}", lambda t=lock.table: waiting_on(url, t))
        lock.release()
    finished(waiter, timeout=900)
    log.recovered(killed)


def _before(stage: str) -> str:
    order = ("fetch", "normalize", "store", "aggregate")
    return order[order.index(stage) - 1]


def kill_rollup(d: Deployment, log: KillLog, tick: datetime) -> None:
    url = d.database_url
    stages = (("buckets", "rollup_buckets"), ("trending", "trending"), ("pages", "repo_charts"))
    locks = [TableLock(url, table) for _, table in stages]
    waiter = d.start("run", "rollup", "--at", tick.isoformat(), "--timeout", "900")
    killed = None
    for (stage, table), lock in zip(stages, locks, strict=True):
        killed_at = log.strike(f"rollup {stage}", lambda t=table: waiting_on(url, t))
        if killed is not None:
            log.recovered(killed)
        killed = killed_at
        lock.release()
    finished(waiter, timeout=900)
    assert killed is not None
    log.recovered(killed)


def kill_stargazers(d: Deployment, log: KillLog, tick: datetime, repo: str, stall: bool) -> int:
    """Kill inside one stargazers page: mid-request (a stalled page) or mid-insert."""
    url = d.database_url
    if stall:
        d.simulator.add_fault("stargazers", "stall", times=1, seconds=PATIENCE_S)
        held: Callable[[], object] = fault_taken(d.simulator)
        lock = None
    else:
        lock = TableLock(url, "star_events")
        held = lambda: waiting_on(url, "star_events")  # noqa: E731
    waiter = d.start(
        "run", "stargazers", "--repo", repo, "--at", tick.isoformat(), *STARGAZER_RATES
    )
    killed = log.strike(f"stargazers page ({'request' if stall else 'insert'})", held)
    d.simulator.state.wake_stalled()
    if lock is not None:
        lock.release()
    finished(waiter, timeout=900)
    log.recovered(killed)
    run_id = d.run_id("stargazers", tick)
    assert run_id is not None
    return run_id


def test_workers_killed_in_every_stage_lose_nothing(
    deploy, postgres_url: str, rabbitmq: str, simulator: Simulator, record_row
) -> None:
    seed = int(os.environ.get("FAULTS_SEED") or random.randrange(1_000_000))
    print(f"\nworker kills: FAULTS_SEED={seed}")
    rng = random.Random(seed)
    d = deploy(postgres_url, rabbitmq)
    github_ticks, rollup_ticks, stargazer_runs = [], [], []
    repos = [item["full_name"] for item in simulator.top(T0)][-ROUNDS:]
    with d.workers() as supervisor:
        log = KillLog(rng, supervisor)
        for round_ in range(ROUNDS):
            # Given a github_top tick, the rollup closing its bucket and a stargazers run
            tick = T0 + timedelta(minutes=30 * round_)
            # When the workers are killed inside each of their stages
            kill_github_top(d, log, tick)
            github_ticks.append(tick)
            kill_rollup(d, log, tick + ledger.BUCKET)
            rollup_ticks.append(tick + ledger.BUCKET)
            simulator.set_clock(tick)
            stargazer_runs.append(
                kill_stargazers(d, log, tick, repos[round_], stall=round_ % 2 == 0)
            )
        restarts = len(supervisor.exits)
    # Then every tick is stored once, whole, and every stargazer once
    tally = (
        ledger.github_top(d.engine, github_ticks)
        + ledger.rollup(d.engine, rollup_ticks)
        + ledger.stargazers(d.engine, stargazer_runs)
    )
    row = Row(
        "1 worker SIGKILL in every stage",
        tally,
        recover_s=max(log.recoveries),
        notes=f"{len(log.kills)} kills in {len(set(log.kills))} stages, {restarts} restarts, "
        f"seed {seed}",
    )
    record_row(row)
    assert len(log.kills) >= 20
    assert_nothing_lost(row)


def test_a_worker_killed_mid_fetch_loses_nothing(
    deploy, postgres_url: str, rabbitmq: str, simulator: Simulator, record_row
) -> None:
    simulator.set_clock(T0)
    d = deploy(postgres_url, rabbitmq)
    # Given a fetch that takes a while
    simulator.add_fault("search", "stall", seconds=4)
    with d.workers() as supervisor:
        waiter = d.start("run", "github_top", "--at", T0.isoformat(), "--timeout", "240")
        run_id = wait_until(lambda: d.run_id("github_top", T0), PATIENCE_S, "the run")
        d.wait_stage(run_id, "fetch", "running")
        # When the worker is SIGKILLed in the middle of it (an OOM kill)
        supervisor.kill()
        killed = time.monotonic()
        # Then the restarted worker gets the unacknowledged message again and completes it
        finished(waiter)
    row = Row("1b worker SIGKILL mid-fetch", ledger.github_top(d.engine, [T0]))
    row.recover_s = time.monotonic() - killed
    record_row(row)
    assert_nothing_lost(row)
