"""Scenario 2: a private RabbitMQ node stopped mid-run, with `rabbitmqctl stop_app` /
`start_app`, with a full stop and start of the node, and killed (SIGKILL) and started.

Workers and the scheduler are real supervised processes on a schedule of one tick a
minute (TASKPIPES_SCHEDULE_* overrides). Each outage spans a minute boundary, so the
scheduler misses a tick (it waits for the broker, sending again with backoff, and does
not exit); afterwards the catch-up pass fills what the policy says
(github_top `latest`: the newest missed tick runs, older ones are recorded skipped;
rollup `all`: every one runs). A publish during the outage must fail loudly, not vanish.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from githubsim import Simulator
from tests.faults import ledger
from tests.faults.deployment import PATIENCE_S, Deployment, finished
from tests.faults.private_services import PrivateRabbit
from tests.faults.report import Row, assert_nothing_lost
from tests.queues import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1800)]

MINUTE = timedelta(minutes=1)
EVERY_MINUTE = {
    "TASKPIPES_SCHEDULE_GITHUB_TOP": "* * * * *",
    "TASKPIPES_SCHEDULE_ROLLUP": "* * * * *",
}
# An outage starts this many seconds into a minute and ends this long into the minute
# after next: the whole minute between has no broker, so its tick is never sent (a
# scheduler restarted later in a minute sends that minute's tick, not earlier ones).
OUTAGE_START_S = 45
OUTAGE_END_S = 10
# How long catch-up may take to fill a missed tick: its pass runs every minute and leaves
# the newest two minutes to the scheduler.
CATCH_UP_S = 6 * 60


def utcnow() -> datetime:
    return datetime.now(UTC)


def floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


@dataclass
class Outage:
    kind: str
    start: datetime
    end: datetime
    recovered_s: float = 0.0

    def covers(self, tick: datetime) -> bool:
        """A tick the scheduler could miss: due while RabbitMQ was away."""
        return self.start - MINUTE <= tick <= self.end + MINUTE


def statuses(d: Deployment, pipeline: str, since: datetime) -> dict[datetime, str]:
    with d.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT tick, status FROM runs WHERE pipeline = %(p)s AND tick >= %(s)s",
            {"p": pipeline, "s": since.replace(tzinfo=None)},
        ).all()
    return {tick.replace(tzinfo=UTC): status for tick, status in rows}


def finished_through(d: Deployment, pipeline: str, first: datetime, last: datetime) -> bool:
    """Every minute tick in [first, last] has a finished run."""
    done = statuses(d, pipeline, first)
    ticks = minute_ticks(first, last)
    return all(done.get(t) in ("succeeded", "skipped", "failed", "dead") for t in ticks)


def minute_ticks(first: datetime, last: datetime) -> list[datetime]:
    count = int((last - first) / MINUTE) + 1
    return [first + i * MINUTE for i in range(count)]


def first_success_after(d: Deployment, moment: datetime) -> Callable[[], bool]:
    """A run of either pipeline finished successfully after `moment` (both directions of
    the broker work again: a tick went out, stages handed off, the outcome came back)."""
    return lambda: bool(
        d.scalar(
            "SELECT count(*) FROM runs WHERE status = 'succeeded' AND finished_at > :m",
            m=moment.replace(tzinfo=None),
        )
    )


def first_success(d: Deployment, pipeline: str, since: datetime) -> datetime | None:
    ticks = [t for t, status in statuses(d, pipeline, since).items() if status == "succeeded"]
    return min(ticks) if ticks else None


def wait_for_second(second: int) -> None:
    """Until the wall clock is `second` seconds into a minute (not a race: a timing plan)."""
    while utcnow().second != second:
        time.sleep(0.2)


def outage(d: Deployment, kind: str, down: Callable[[], None], up: Callable[[], None]) -> Outage:
    wait_for_second(OUTAGE_START_S)
    start = utcnow()
    down()
    # A publish while RabbitMQ is away fails loudly and leaves no run waiting for it.
    tick = floor_minute(start).replace(hour=3, minute=0) - timedelta(days=1)
    attempt = d.taskpipes("run", "maintenance", "--at", tick.isoformat(), "--timeout", "30")
    assert attempt.returncode != 0, attempt.stdout
    assert attempt.stderr.strip(), "a failed publish must say why"
    assert ledger.run_status(d.engine, "maintenance", tick) in (None, "failed"), attempt.stderr
    boundary = floor_minute(start) + 2 * MINUTE + timedelta(seconds=OUTAGE_END_S)
    wait_until(lambda: utcnow() >= boundary, 180, "the outage to span a whole minute")
    up()
    end = utcnow()
    began = time.monotonic()
    wait_until(first_success_after(d, end), PATIENCE_S, f"a run after the {kind}")
    return Outage(kind, start, end, time.monotonic() - began)


def test_broker_outages_lose_no_tick(
    deploy, postgres_url: str, private_rabbit: PrivateRabbit, simulator: Simulator, record_row
) -> None:
    # Given workers and a scheduler on one tick a minute, and a first tick of each pipeline
    simulator.set_clock(utcnow(), advance=True)
    d = deploy(postgres_url, private_rabbit.add_vhost("faults"), **EVERY_MINUTE)
    started = utcnow()
    with d.workers() as workers, d.scheduler() as scheduler:
        firsts = [
            wait_until(lambda p=p: first_success(d, p, started), PATIENCE_S, f"a first {p} run")
            for p in ("github_top", "rollup")
        ]
        first = max(firsts)
        # When RabbitMQ stops its application, then the whole node, then dies, each across
        # a tick
        outages = [
            outage(d, "stop_app", private_rabbit.stop_app, private_rabbit.start_app),
            outage(d, "full stop", private_rabbit.stop, private_rabbit.start),
            outage(d, "kill", private_rabbit.kill, private_rabbit.start),
        ]
        last = floor_minute(outages[-1].end) + MINUTE
        # Then the missed ticks are filled per policy
        began = time.monotonic()
        for pipeline in ("github_top", "rollup"):
            wait_until(
                lambda p=pipeline: finished_through(d, p, first, last),
                CATCH_UP_S,
                f"{pipeline} catch-up through {last:%H:%M}",
            )
        filled_s = time.monotonic() - began
        scheduler_exits, worker_exits = len(scheduler.exits), len(workers.exits)
        # and a rollup after the last store, so every snapshot has had its chance
        wait_until(
            lambda: (
                d.scalar("SELECT count(*) FROM runs WHERE status IN ('queued', 'running')") == 0
            ),
            PATIENCE_S,
            "runs in flight",
        )
        closing = floor_minute(utcnow())
        finished(d.start("run", "rollup", "--at", closing.isoformat(), "--timeout", "300"))
    github = statuses(d, "github_top", first)
    skipped = [t for t in minute_ticks(first, last) if github.get(t) == "skipped"]
    unexplained = [t for t in skipped if not any(o.covers(t) for o in outages)]
    ticks = minute_ticks(first, last)
    tally = ledger.github_top(d.engine, [t for t in ticks if t not in skipped]) + ledger.rollup(
        d.engine, ticks
    )
    tally.lost += len(unexplained)
    tally.problems += [f"github_top {t:%H:%M} skipped outside an outage" for t in unexplained]
    filled = d.log("workers").read_text(errors="replace").count("enqueued by catch-up")
    scheduler_log = d.log("scheduler").read_text(errors="replace")
    waits = scheduler_log.count("RabbitMQ unreachable")
    row = Row(
        "2 RabbitMQ stop_app/start_app, full stop/start, SIGKILL/start",
        tally,
        recover_s=max(o.recovered_s for o in outages),
        notes=f"{filled} missed ticks enqueued by catch-up, {len(skipped)} github_top ticks "
        "skipped per policy 'latest'; "
        f"missed ticks filled {filled_s:.0f} s after the last outage; "
        f"scheduler restarts {scheduler_exits} ({waits} sends waited for the broker), "
        f"worker restarts {worker_exits}",
    )
    record_row(row)
    assert_nothing_lost(row)
    assert filled + len(skipped) >= len(outages), "every outage cost the scheduler a tick"
    # The scheduler waited for RabbitMQ instead of exiting, and said so without the password
    assert scheduler_exits == 0, scheduler_log[-3000:]
    assert waits >= len(outages), scheduler_log[-3000:]
    assert "guest:guest" not in scheduler_log


def test_a_broker_restart_mid_fetch_loses_nothing(
    deploy, postgres_url: str, private_rabbit: PrivateRabbit, simulator: Simulator, record_row
) -> None:
    tick = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)
    simulator.set_clock(tick)
    d = deploy(postgres_url, private_rabbit.add_vhost("faults"))
    simulator.add_fault("search", "stall", seconds=6)
    with d.workers():
        waiter = d.start("run", "github_top", "--at", tick.isoformat(), "--timeout", "240")
        run_id = wait_until(lambda: d.run_id("github_top", tick), PATIENCE_S, "the run")
        d.wait_stage(run_id, "fetch", "running")
        # When RabbitMQ goes away and comes back while the fetch is in flight
        private_rabbit.stop_app()
        down = time.monotonic()
        private_rabbit.start_app()
        # Then the workers reconnect and the run completes exactly once
        finished(waiter)
        recovered = time.monotonic() - down
    row = Row("2b RabbitMQ restart mid-fetch", ledger.github_top(d.engine, [tick]), recovered)
    record_row(row)
    assert_nothing_lost(row)
