"""Reader latency while a million star events are inserted: all at once, then spread.

A reader process issues a steady stream of `GET /api/top` (uvicorn in a subprocess via
`taskpipes serve`, PostgreSQL, loopback) through the phases: idle; while EVENTS star
events are inserted in one batch (the upsert helper's COPY path); and while the same
number is inserted the way the stargazers pipeline spreads them: one page of 100 events
per `spread.page_gap(rate, ...)` seconds through `pipelines.stargazers.insert_star_events`,
each page its own transaction; idle again. The table is emptied between the two insert
phases.
Prints the reader's p50/p99 per phase and the achieved insert rate (from `inserted_at`)
against the target.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests  # noqa: E402
from sqlalchemy import Engine, func, select, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from bench.api import api_subprocess, report  # noqa: E402
from bench.pg import scratch_database  # noqa: E402
from db import schema as migrate  # noqa: E402
from db.models import LatestRanking, StarEvent  # noqa: E402
from pipelines import spread  # noqa: E402
from pipelines.star_history import Stargazer  # noqa: E402
from pipelines.stargazers import insert_star_events  # noqa: E402
from taskpipes.store.database import make_engine  # noqa: E402

EVENTS = 1_000_000
# The spread phase's target: 1M events in 200 s keeps the whole run under 5 minutes.
RATE = 5_000
# The reader asks this often (a steady stream, not a flood: a flood measures the CPU).
READS_PER_S = 50
# Seconds of idle reads before the inserts (and half as many after them).
IDLE_S = 20
# Reads before the idle phase starts: connections, caches and the API process warm up.
WARMUP_S = 5
# Settle time between phases, so one phase's tail does not land in the next.
SETTLE_S = 3
REPO_ID = 1
FIRST_STAR = datetime(2015, 1, 1, tzinfo=UTC)


def read_steadily(base: str, stop: mp.synchronize.Event, out: mp.Queue) -> None:
    """GET /api/top every 1/READS_PER_S s until `stop`; sends back (started, latency)."""
    samples: list[tuple[float, float]] = []
    interval = 1 / READS_PER_S
    with requests.Session() as http:
        due = time.monotonic()
        while not stop.is_set():
            started = time.monotonic()
            http.get(f"{base}/api/top").raise_for_status()
            samples.append((started, time.monotonic() - started))
            due = max(due + interval, time.monotonic())
            time.sleep(max(0.0, due - time.monotonic()))
    out.put(samples)


def stargazers(first_user: int, count: int) -> list[Stargazer]:
    return [
        Stargazer(first_user + i, FIRST_STAR + timedelta(seconds=37 * (first_user + i)))
        for i in range(count)
    ]


def insert_all_at_once(engine: Engine, stars: list[Stargazer]) -> None:
    with Session(engine) as session, session.begin():
        insert_star_events(session, REPO_ID, stars, datetime.now(UTC))


def insert_spread(engine: Engine, events: int, rate: float) -> None:
    """A page of PER_PAGE events every gap seconds, on an absolute schedule."""
    gap = spread.page_gap(rate, api_rate=1e12)
    start = time.monotonic()
    for page, first in enumerate(range(0, events, spread.PER_PAGE)):
        time.sleep(max(0.0, start + page * gap - time.monotonic()))
        count = min(spread.PER_PAGE, events - first)
        with Session(engine) as session, session.begin():
            insert_star_events(session, REPO_ID, stargazers(first + 1, count), datetime.now(UTC))


def achieved_rate(engine: Engine) -> float:
    """Rows per second from the stored timestamps; the first page only opens the window."""
    with Session(engine) as session:
        first, last, rows = session.execute(
            select(func.min(StarEvent.inserted_at), func.max(StarEvent.inserted_at), func.count())
        ).one()
    return (rows - spread.PER_PAGE) / (last - first).total_seconds()


def seed_ranking(engine: Engine) -> None:
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        session.add_all(
            LatestRanking(
                rank=rank,
                repo_id=1000 + rank,
                full_name=f"owner{rank}/repo{rank}",
                stars=500_000 - rank,
                forks=rank,
                language="Python",
                stars_gained=rank,
                tick=now,
            )
            for rank in range(1, 101)
        )


def phase(samples: list[tuple[float, float]], start: float, end: float) -> list[float]:
    return [latency for started, latency in samples if start <= started < end]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=RATE, help="spread target, rows/s")
    parser.add_argument("--events", type=int, default=EVENTS, help="star events per phase")
    args = parser.parse_args()
    rate, events = args.rate, args.events
    batch = stargazers(1, events)
    with scratch_database("bench_spread") as url:
        migrate.upgrade(url)
        engine = make_engine(url)
        seed_ranking(engine)
        with api_subprocess(url) as base:
            stop = mp.Event()
            out: mp.Queue[list[tuple[float, float]]] = mp.Queue()
            reader = mp.Process(target=read_steadily, args=(base, stop, out))
            reader.start()
            time.sleep(WARMUP_S)
            marks = {"idle": time.monotonic()}
            time.sleep(IDLE_S)
            marks["batch"] = time.monotonic()
            insert_all_at_once(engine, batch)
            marks["batch_end"] = time.monotonic()
            time.sleep(SETTLE_S)
            with engine.begin() as conn:
                conn.execute(text("TRUNCATE star_events"))
            time.sleep(SETTLE_S)
            marks["spread"] = time.monotonic()
            insert_spread(engine, events, rate)
            marks["spread_end"] = time.monotonic()
            achieved = achieved_rate(engine)
            time.sleep(SETTLE_S)
            marks["idle_again"] = time.monotonic()
            time.sleep(IDLE_S / 2)
            marks["idle_again_end"] = time.monotonic()
            stop.set()
            samples = out.get()
            reader.join()
        engine.dispose()

    print(f"{events:,} star events; reader: GET /api/top {READS_PER_S}/s on PostgreSQL")
    # The baseline pools idle reads before and after the inserts: a shared machine's
    # background load then weighs on the baseline as it does on the phases.
    idle = phase(samples, marks["idle"], marks["batch"])
    idle += phase(samples, marks["idle_again"], marks["idle_again_end"])
    _, idle_p99 = report("idle (before and after)", idle)
    batch_s = marks["batch_end"] - marks["batch"]
    _, batch_p99 = report(
        f"all at once ({batch_s:.1f} s)", phase(samples, marks["batch"], marks["batch_end"])
    )
    spread_s = marks["spread_end"] - marks["spread"]
    _, spread_p99 = report(
        f"spread ({spread_s:.0f} s)", phase(samples, marks["spread"], marks["spread_end"])
    )
    print(
        f"p99 vs idle: all at once {batch_p99 / idle_p99:.2f}x, spread {spread_p99 / idle_p99:.2f}x"
    )
    print(
        f"insert rate: all at once {events / batch_s:,.0f} rows/s; spread {achieved:,.0f} rows/s "
        f"against a target of {rate:,.0f} ({achieved / rate:.3f} of target, goal within 5%)"
    )
    print(f"result: spread_p99_vs_idle {spread_p99 / idle_p99:.2f} (goal <= 1.5)")


if __name__ == "__main__":
    main()
