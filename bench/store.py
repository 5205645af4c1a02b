"""Snapshot store throughput on PostgreSQL against a bare COPY of the same rows.

Stores N snapshot rows (ticks of BENCH_REPOS repositories, 100 unless set; the rows stay
200k, so 1,000 repositories are 200 ticks) through the project's store code in
one batch, as a re-store from kept raw answers does, and COPYs the same rows into a bare
table without keys. Prints rows/s for both and the ratio.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from bench.pg import scratch_database  # noqa: E402
from db import schema as migrate  # noqa: E402
from pipelines.records import RepoSnapshot  # noqa: E402
from pipelines.store_snapshot import TickSnapshot, store_snapshots  # noqa: E402
from taskpipes.store.database import make_engine  # noqa: E402

REPOS = int(os.environ.get("BENCH_REPOS") or 100)
ROWS = 200_000
TICKS = ROWS // REPOS  # 100 repositories: two weeks of 10-minute ticks
REPEATS = 3
START = datetime(2026, 1, 1, tzinfo=UTC)
COLUMNS = ("repo_id", "tick", "rank", "stars", "forks", "open_issues", "stored_at")


def history() -> list[TickSnapshot]:
    snapshots = []
    for t in range(TICKS):
        records = [
            RepoSnapshot(
                id=1000 + rank,
                full_name=f"owner{rank}/repo{rank}",
                rank=rank,
                stars=500_000 - rank * (100_000 // REPOS) + t,
                forks=10_000 + rank,
                open_issues=rank,
                language="Python",
                license="MIT",
                description="benchmark repository",
            )
            for rank in range(1, REPOS + 1)
        ]
        snapshots.append(TickSnapshot(START + timedelta(minutes=10 * t), records))
    return snapshots


def time_store(url: str, snapshots: list[TickSnapshot]) -> float:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE snapshots, repositories CASCADE"))
    now = datetime.now(UTC)
    started = time.perf_counter()
    with Session(engine) as session, session.begin():
        store_snapshots(session, snapshots, now)
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed


def time_copy(url: str, snapshots: list[TickSnapshot]) -> float:
    engine = make_engine(url)
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [
        (r.id, s.tick.replace(tzinfo=None), r.rank, r.stars, r.forks, r.open_issues, now)
        for s in snapshots
        for r in s.records
    ]
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS bare_snapshots"))
        conn.execute(
            text(
                "CREATE TABLE bare_snapshots (repo_id bigint, tick timestamp, rank int, stars int,"
                " forks int, open_issues int, stored_at timestamp)"
            )
        )
    raw = engine.raw_connection()
    driver = raw.driver_connection  # psycopg's own connection, whose cursor has COPY
    assert driver is not None
    started = time.perf_counter()
    with (
        driver.cursor() as cur,
        cur.copy(f"COPY bare_snapshots ({', '.join(COLUMNS)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)
    raw.commit()
    elapsed = time.perf_counter() - started
    raw.close()
    engine.dispose()
    return elapsed


def main() -> None:
    snapshots = history()
    n = TICKS * REPOS
    with scratch_database("bench_store") as url:
        migrate.upgrade(url)
        store_s = statistics.median(time_store(url, snapshots) for _ in range(REPEATS))
        copy_s = statistics.median(time_copy(url, snapshots) for _ in range(REPEATS))
    store_rate, copy_rate = n / store_s, n / copy_s
    print(f"rows: {n} ({TICKS} ticks of {REPOS} repositories)")
    print(
        f"store (project code, upsert via COPY + INSERT ... ON CONFLICT): {store_rate:,.0f} rows/s"
    )
    print(f"bare COPY into a keyless table:                              {copy_rate:,.0f} rows/s")
    print(f"result: store_vs_copy {store_rate / copy_rate:.2f} (goal >= 0.33)")


if __name__ == "__main__":
    main()
