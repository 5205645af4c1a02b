"""The cost of one incremental rollup after 1 day and after 1 year of snapshots.

100 repositories (BENCH_REPOS=1000 for ten times as many) every 10 minutes (1 year: 5.26M
snapshot rows per 100) on PostgreSQL, with the
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

from bench.history import (  # noqa: E402
    DAYS,
    END,
    REPOS,
    TICK,
    build_history,
    check_buckets,
    store_tick,
)
from bench.pg import scratch_database  # noqa: E402
from pipelines.buckets import BUCKET  # noqa: E402
from pipelines.rollup import roll_up_tick  # noqa: E402

# Rollups measured per history, alternating between the two so that load from anything
# else on the machine hits both alike; the first ones warm the caches and are not counted.
RUNS = 25
WARMUP = 3
HISTORIES = {"day": 1, "year": DAYS}


class Rollups:
    """The next incremental rollups of one history: store the ticks of the next bucket,
    then time the rollup that closes it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.next_tick = END
        self.rollups = 0

    def time_next(self) -> float:
        self.rollups += 1
        rollup_at = END + BUCKET * self.rollups
        while self.next_tick < rollup_at:
            store_tick(self.engine, self.next_tick)
            self.next_tick += TICK
        started = time.perf_counter()
        with Session(self.engine) as session, session.begin():
            roll_up_tick(session, rollup_at)
        return time.perf_counter() - started


def measure(urls: dict[str, str]) -> dict[str, list[float]]:
    histories = {}
    for name, url in urls.items():
        started = time.perf_counter()
        engine = build_history(url, HISTORIES[name])
        check_buckets(engine)
        rows = HISTORIES[name] * 24 * 6 * REPOS
        print(f"{name}: {rows:,} snapshot rows, built in {time.perf_counter() - started:.1f}s")
        histories[name] = Rollups(engine)
    timings: dict[str, list[float]] = {name: [] for name in urls}
    for _ in range(RUNS):
        for name, rollups in histories.items():
            timings[name].append(rollups.time_next())
    for rollups in histories.values():
        check_buckets(rollups.engine)  # the incremental rollups kept them equal to the reference
        rollups.engine.dispose()
    return {name: values[WARMUP:] for name, values in timings.items()}


def main() -> None:
    with (
        scratch_database("bench_rollup_day") as day_url,
        scratch_database("bench_rollup_year") as year_url,
    ):
        timings = measure({"day": day_url, "year": year_url})
    medians = {name: statistics.median(values) for name, values in timings.items()}
    for name, values in timings.items():
        print(
            f"rollup after {HISTORIES[name]} days: median {medians[name] * 1000:6.2f} ms "
            f"(min {min(values) * 1000:.2f}, max {max(values) * 1000:.2f}, {len(values)} runs)"
        )
    ratio = medians["year"] / medians["day"]
    print(f"repositories: {REPOS}; long history: {DAYS} days; year/day: {ratio:.2f}")
    print(f"result: rollup_year_vs_day {ratio:.2f} (goal <= 1.5)")


if __name__ == "__main__":
    main()
