"""A synthetic snapshot history on PostgreSQL, rolled up, for the rollup and API benches.

BENCH_REPOS repositories (100 unless set; 1,000 is TASKPIPES_TOP_N's largest) every 10 minutes, generated inside PostgreSQL (generate_series), then the
rollup state a year of 15-minute rollups would have left: every bucket, the watermark and
as_of. The buckets are built by one SQL statement (the same definition as
pipelines.buckets.full_rollup); `check_buckets` compares a sample with the pure reference.
New ticks after that go through the project's own store code.
"""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from db import schema as migrate
from db.models import STATE_ID, RollupBucket, Snapshot
from pipelines.buckets import StarCount, full_rollup
from pipelines.records import RepoSnapshot
from pipelines.store_snapshot import store_snapshot
from taskpipes.store.database import make_engine

REPOS = int(os.environ.get("BENCH_REPOS") or 100)
# The long history's length in days: a year unless BENCH_DAYS says otherwise (a year of
# 1,000 repositories is 52.6M rows, hours to build on a loaded 2-core box).
DAYS = int(os.environ.get("BENCH_DAYS") or 365)
# Stars fall by this much per rank, so that the last repository still has ~50k.
STEP = 150_000 // REPOS
TICK = timedelta(minutes=10)
# The history ends here; the measured rollups come after it.
END = datetime(2026, 8, 21, tzinfo=UTC)
# Tick number k is at ORIGIN + k * TICK; stars are a function of (repository, k).
ORIGIN = END - timedelta(days=400)
# Snapshots are stored this long after their tick.
STORE_DELAY = timedelta(seconds=30)
# Repository ids start here (GitHub ids are large).
FIRST_ID = 10_000


def stars_at(repo: int, k: int) -> int:
    """Stars of repository `repo` (0-based) at tick number `k`: steady growth with a daily
    wave of its own phase, so trending changes over time. Mirrors STARS_SQL."""
    return 200_000 - repo * STEP + k * (repo % 7 + 1) // 3 + ((k + 11 * repo) % 144) * (repo % 5)


STARS_SQL = f"200000 - r * {STEP} + (k * (r % 7 + 1)) / 3 + ((k + 11 * r) % 144) * (r % 5)"


def build_history(url: str, days: int) -> Engine:
    """A migrated database holding `days` days of snapshots before END, rolled up as of END."""
    migrate.upgrade(url)
    engine = make_engine(url)
    ticks = days * 24 * 6
    start = END - TICK * ticks
    first_k = round((start - ORIGIN) / TICK)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO repositories (id, full_name, first_seen, last_seen) "
                "SELECT :first + r, 'owner' || r || '/repo' || r, :start, :last "
                "FROM generate_series(0, :n - 1) AS r"
            ),
            {"first": FIRST_ID, "start": naive(start), "last": naive(END - TICK), "n": REPOS},
        )
        conn.execute(
            text(
                "INSERT INTO snapshots (tick, repo_id, rank, stars, forks, open_issues, stored_at) "
                f"SELECT t, :first + r, r + 1, {STARS_SQL}, 1000, 10, t + :delay "
                "FROM generate_series(:first_k, :first_k + :ticks - 1) AS k, "
                "LATERAL (SELECT :origin + k * interval '10 minutes' AS t) AS tick, "
                "generate_series(0, :n - 1) AS r"
            ),
            {
                "first": FIRST_ID,
                "first_k": first_k,
                "ticks": ticks,
                "origin": naive(ORIGIN),
                "delay": STORE_DELAY,
                "n": REPOS,
            },
        )
        conn.execute(text(BUCKETS_SQL), {"bucket_epoch": "1970-01-01"})
        conn.execute(
            text(
                "INSERT INTO rollup_state (id, as_of, stored_watermark) VALUES (:id, :as_of, :wm)"
            ),
            {"id": STATE_ID, "as_of": naive(END), "wm": naive(END - TICK + STORE_DELAY)},
        )
        conn.execute(text("ANALYZE"))
    return engine


# Every 15-minute bucket's last snapshot, and its gain over the bucket before.
BUCKETS_SQL = """
INSERT INTO rollup_buckets (repo_id, bucket_start, last_tick, stars, stars_gained)
SELECT repo_id, bucket_start, tick, stars,
       stars - lag(stars) OVER (PARTITION BY repo_id ORDER BY bucket_start)
FROM (
    SELECT DISTINCT ON (repo_id, bucket_start) repo_id, tick, stars,
           date_bin('15 minutes', tick, CAST(:bucket_epoch AS timestamp)) AS bucket_start
    FROM snapshots
    ORDER BY repo_id, bucket_start, tick DESC
) AS lasts
"""


def naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def check_buckets(engine: Engine, sample: int = 3) -> None:
    """The SQL-built buckets of a few repositories equal the pure reference's."""
    with Session(engine) as session:
        for repo_id in random.Random(1).sample(range(FIRST_ID, FIRST_ID + REPOS), sample):
            counts = session.execute(
                select(Snapshot.repo_id, Snapshot.tick, Snapshot.stars).where(
                    Snapshot.repo_id == repo_id
                )
            )
            reference = full_rollup(StarCount(*row) for row in counts)
            rows = session.scalars(
                select(RollupBucket)
                .where(RollupBucket.repo_id == repo_id)
                .order_by(RollupBucket.bucket_start)
            )
            built = [(r.bucket_start, r.last_tick, r.stars, r.stars_gained) for r in rows]
            if built != [(b.start, b.last_tick, b.stars, b.stars_gained) for b in reference]:
                raise AssertionError(
                    f"SQL-built buckets of repository {repo_id} differ from full_rollup"
                )


def store_tick(engine: Engine, tick: datetime) -> None:
    """Store the snapshot of `tick` through the project's store code."""
    k = round((tick - ORIGIN) / TICK)
    records = [
        RepoSnapshot(
            FIRST_ID + r, f"owner{r}/repo{r}", r + 1, stars_at(r, k), 1000, 10, None, None, None
        )
        for r in range(REPOS)
    ]
    with Session(engine) as session, session.begin():
        store_snapshot(session, tick, records, tick + STORE_DELAY)
