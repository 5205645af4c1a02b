"""The cost of one incremental rollup after 1 day and after 1 year of snapshots.

100 repositories every 10 minutes (1 year: 5.26M snapshot rows) on PostgreSQL, with the
rollup state a year of rollups leaves behind (bench/history.py). Each measured rollup is
the next incremental one: the new ticks are stored with the project's store code, then
buckets and trending are rolled up for the next 15-minute tick in one transaction.
The goal is a cost that does not grow with the history: year/day <= 1.5.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from bench.history import END, TICK, build_history, check_buckets, store_tick  # noqa: E402
from bench.pg import scratch_database  # noqa: E402
from pipelines.buckets import BUCKET  # noqa: E402
from pipelines.rollup import roll_up_tick  # noqa: E402

# Rollups measured per history; the first ones warm the caches and are not counted.
RUNS = 12
WARMUP = 2


def time_rollups(engine: Engine, runs: int) -> list[float]:
    """Store the ticks of each next bucket, then time the rollup that closes it."""
    timings = []
    tick = END
    for i in range(1, runs + 1):
        rollup_at = END + BUCKET * i
        while tick < rollup_at:
            store_tick(engine, tick)
            tick += TICK
        started = time.perf_counter()
        with Session(engine) as session, session.begin():
            roll_up_tick(session, rollup_at)
        timings.append(time.perf_counter() - started)
    return timings[WARMUP:]


def measure(days: int) -> float:
    with scratch_database(f"bench_rollup_{days}d") as url:
        started = time.perf_counter()
        engine = build_history(url, days)
        check_buckets(engine)
        built = time.perf_counter() - started
        timings = time_rollups(engine, RUNS)
        check_buckets(engine)  # the incremental rollups kept them equal to the reference
        engine.dispose()
    median = statistics.median(timings)
    rows = days * 24 * 6 * 100
    print(
        f"{days:>4} days ({rows:>9,} snapshot rows, built in {built:5.1f}s): "
        f"rollup median {median * 1000:7.2f} ms  (min {min(timings) * 1000:.2f}, "
        f"max {max(timings) * 1000:.2f}, {len(timings)} runs)"
    )
    return median


def main() -> None:
    day = measure(1)
    year = measure(365)
    print(f"year/day: {year / day:.2f}")
    print(f"result: rollup_year_vs_day {year / day:.2f} (goal <= 1.5)")


if __name__ == "__main__":
    main()
