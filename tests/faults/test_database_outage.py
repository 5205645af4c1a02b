"""Scenario 3: PostgreSQL goes away under the stages, on a private cluster.

- A 30-second outage (the whole server stopped) while store, then while the rollup's
  buckets stage, is in the middle of its transaction: the stage fails, retries with
  backoff and completes after the server is back.
- A backend killed mid-transaction (pg_terminate_backend) while store waits on a lock.
- `taskpipes run`, waiting for each run meanwhile, rides the outages out and exits 0.
- Throughout, a reader polls `taskpipes serve`'s /api/top: every answer it gets is a whole
  snapshot (100 ranks, each repository with the stars stored for that tick), never a mix.

A last test cuts the workers' connections with a TCP proxy mid-fetch (a network cut, the
database itself stays up).
"""

from __future__ import annotations

import threading
import time
import urllib.error
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from githubsim import Simulator
from tests.faults import ledger
from tests.faults.deployment import PATIENCE_S, Deployment, finished, get_json
from tests.faults.holds import TableLock, dsn, waiting_on
from tests.faults.private_services import PrivatePostgres
from tests.faults.report import Row, Tally, assert_nothing_lost
from tests.queues import wait_until
from tests.tcpproxy import TcpProxy

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1800)]

T0 = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)
# How long the database stays away.
OUTAGE_S = 30
# How often the reader asks for /api/top.
POLL_S = 0.1


@dataclass
class TopReader:
    """Polls /api/top in a thread and keeps every whole answer it got."""

    url: str
    answers: list[dict[str, Any]] = field(default_factory=list)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> TopReader:
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self.answers.append(get_json(f"{self.url}/api/top?limit=100", timeout=30))
            except (urllib.error.URLError, OSError, ValueError):
                self.errors += 1  # the database is away: an error answer, not a partial one
            time.sleep(POLL_S)


def partial_answers(d: Deployment, answers: list[dict[str, Any]]) -> list[str]:
    """Answers that are not exactly the stored snapshot of their as_of tick."""
    problems = []
    stored: dict[str, dict[int, int]] = {}
    for answer in answers:
        as_of, repos = answer["as_of"], answer["repos"]
        if as_of is None:
            if repos:
                problems.append(f"{len(repos)} repositories without an as_of")
            continue
        if as_of not in stored:
            with d.engine.connect() as conn:
                rows = conn.execute(
                    text("SELECT repo_id, stars FROM snapshots WHERE tick = :t"),
                    {"t": datetime.fromisoformat(as_of).replace(tzinfo=None)},
                ).all()
            stored[as_of] = dict(rows)
        ranks = [r["rank"] for r in repos]
        served = {r["id"]: r["stars"] for r in repos}
        if ranks != list(range(1, 101)) or served != stored[as_of]:
            problems.append(f"as_of {as_of}: {len(repos)} ranks, not the stored snapshot")
    return problems


def succeeded(d: Deployment, pipeline: str, tick: datetime) -> None:
    wait_until(
        lambda: ledger.run_status(d.engine, pipeline, tick) in ("succeeded", "failed", "dead"),
        600,
        f"the {pipeline} run for {tick:%H:%M}",
    )


def stop_for(postgres: PrivatePostgres, seconds: float) -> tuple[datetime, float]:
    """Stop the server (open transactions roll back, sessions close), wait, start it again;
    returns when it went away (wall clock) and the moment it answers again."""
    down = datetime.now(UTC)
    postgres.stop("fast")
    time.sleep(seconds)  # the outage itself, not a wait for a result
    postgres.start()
    return down, time.monotonic()


def attempt_started(d: Deployment, pipeline: str, tick: datetime, stage: str) -> datetime:
    """When the attempt that completed `stage` of the tick's run began."""
    started = d.scalar(
        "SELECT s.started_at FROM stage_runs s JOIN runs r ON r.id = s.run_id"
        " WHERE r.pipeline = :p AND r.tick = :t AND s.stage = :s",
        p=pipeline,
        t=tick.replace(tzinfo=None),
        s=stage,
    )
    return started.replace(tzinfo=UTC)


def test_database_outages_lose_nothing_and_readers_never_see_a_partial_snapshot(
    deploy,
    private_postgres: PrivatePostgres,
    rabbitmq: str,
    simulator: Simulator,
    record_row,
    tmp_path,
) -> None:
    url = private_postgres.create_database("faults")
    # The production retry backoff (2 s first), which a 30-second outage must fit in.
    d = deploy(url, rabbitmq, TASKPIPES_RETRY_MIN_BACKOFF_MS="2000")
    recoveries: list[float] = []
    ticks = [T0, T0 + timedelta(minutes=10)]
    rollup_tick = T0 + ledger.BUCKET
    with d.workers() as workers, d.serve() as api, TopReader(api) as reader:
        # Given store in the middle of its transaction (waiting on a lock we hold)
        simulator.set_clock(ticks[0])
        lock = TableLock(url, "snapshots")
        waiter = d.start("run", "github_top", "--at", ticks[0].isoformat(), "--timeout", "600")
        wait_until(lambda: waiting_on(url, "snapshots"), PATIENCE_S, "store to be mid-write")
        # When the database stops for 30 s
        store_down, back = stop_for(private_postgres, OUTAGE_S)
        lock.release()
        # Then store retries and the run completes, and the command that waited for it
        # through the outage says so
        succeeded(d, "github_top", ticks[0])
        recoveries.append(time.monotonic() - back)
        waited_out = [finished(waiter, timeout=60)]

        # Given store waiting on a lock again, when its backend is terminated
        simulator.set_clock(ticks[1])
        lock = TableLock(url, "snapshots")
        waiter = d.start("run", "github_top", "--at", ticks[1].isoformat(), "--timeout", "600")
        wait_until(lambda: waiting_on(url, "snapshots"), PATIENCE_S, "store to be mid-write")
        with psycopg.connect(dsn(url), autocommit=True) as admin:
            terminated = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks"
                " WHERE NOT granted AND relation = to_regclass('snapshots')"
            ).fetchall()
        assert terminated and all(ok for (ok,) in terminated)
        killed = time.monotonic()
        lock.release()
        finished(waiter, timeout=600)
        recoveries.append(time.monotonic() - killed)

        # Given the rollup's buckets stage mid-write, when the database stops for 30 s
        lock = TableLock(url, "rollup_buckets")
        waiter = d.start("run", "rollup", "--at", rollup_tick.isoformat(), "--timeout", "600")
        wait_until(lambda: waiting_on(url, "rollup_buckets"), PATIENCE_S, "buckets mid-write")
        buckets_down, back = stop_for(private_postgres, OUTAGE_S)
        lock.release()
        succeeded(d, "rollup", rollup_tick)
        recoveries.append(time.monotonic() - back)
        waited_out.append(finished(waiter, timeout=60))
        restarts = len(workers.exits)

    # Then every tick is stored whole, exactly once, and no reader saw a partial ranking
    tally = ledger.github_top(d.engine, ticks) + ledger.rollup(d.engine, [rollup_tick])
    partial = partial_answers(d, reader.answers)
    tally += Tally(lost=len(partial), problems=partial)
    # The attempt in flight died with its session, and could not record its failure in a
    # database that was gone: the attempt that completed is a retry, begun after the fault.
    retried = {
        "store": attempt_started(d, "github_top", ticks[0], "store") - store_down,
        "buckets": attempt_started(d, "rollup", rollup_tick, "buckets") - buckets_down,
    }
    row = Row(
        "3 PostgreSQL 30 s outages (store, rollup), backend killed; /api/top polled",
        tally,
        recover_s=max(recoveries),
        notes=f"{len(reader.answers)} whole /api/top answers, {reader.errors} errors while "
        f"down, 0 partial; the completing store and buckets attempts began "
        f"{retried['store'].total_seconds():.0f} s and {retried['buckets'].total_seconds():.0f} s "
        f"after the server went away; {restarts} worker restarts",
    )
    record_row(row)
    assert_nothing_lost(row)
    # Each outage cost its stage an attempt (the retries are what recovered it)
    assert all(delay > timedelta(0) for delay in retried.values()), retried
    assert reader.answers, "the reader never got an answer"
    # The waiting commands rode the outages out, one line per attempt and no traceback
    for output in waited_out:
        assert "database unreachable" in output and "Traceback" not in output, output


def test_a_connection_cut_mid_fetch_loses_nothing(
    deploy, postgres_url: str, rabbitmq: str, simulator: Simulator, record_row
) -> None:
    simulator.set_clock(T0)
    simulator.add_fault("search", "stall", seconds=4)
    with TcpProxy(5432) as proxy:
        # Given workers that reach PostgreSQL through a proxy that can cut them off
        d = deploy(postgres_url, rabbitmq)
        workers_env = {"DATABASE_URL": proxy.proxied(postgres_url)}
        cut = deploy(postgres_url, rabbitmq, **workers_env)
        with cut.workers() as _:
            waiter = d.start("run", "github_top", "--at", T0.isoformat(), "--timeout", "240")
            run_id = wait_until(lambda: d.run_id("github_top", T0), PATIENCE_S, "the run")
            d.wait_stage(run_id, "fetch", "running")
            # When the connections are cut while the fetch is in flight, so that recording
            # its answer fails, and come back after the workers saw it fail
            proxy.stop()
            log = cut.log("workers")
            wait_until(lambda: "OperationalError" in log.read_text(), 60, "a failed write")
            proxy.start()
            back = time.monotonic()
            # Then a retry completes the run, exactly once
            finished(waiter)
            recovered = time.monotonic() - back
    row = Row("3b PostgreSQL connections cut mid-fetch", ledger.github_top(d.engine, [T0]))
    row.recover_s = recovered
    record_row(row)
    assert_nothing_lost(row)
    fetches = d.scalar(
        "SELECT attempts FROM stage_runs WHERE run_id = :r AND stage = 'fetch'", r=run_id
    )
    assert fetches is not None and fetches >= 2  # the outage cost the fetch an attempt
