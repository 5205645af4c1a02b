"""The rollup pipeline: 15-minute buckets, then trending, then the pages' data, every 15 minutes.

Incremental: a run reads only the snapshots stored since the previous run (by stored_at,
indexed) and recomputes the buckets they touch, plus each repository's next stored bucket,
whose gain depends on them. A late snapshot (a late run, a re-run, a backfill) is found the
same way, however old its tick, so the next rollup repairs its bucket and the chain after
it. Trending is then rebuilt as of the newest rollup tick from index lookups.

The rollup at tick T closes the bucket [T - 15m, T); since it rolls up whatever was stored,
running any tick again, or out of order, leaves the same buckets behind.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from db.models import STATE_ID, Repository, RollupBucket, RollupState, Snapshot
from pipelines.buckets import (
    BUCKET,
    Bucket,
    StarCount,
    bucket_start,
    last_per_bucket,
    recompute_segment,
    split_stretch,
    stretches,
)
from pipelines.github_errors import PermanentError
from pipelines.repo_charts import refresh_page_data
from pipelines.trending import refresh_trending
from taskpipes import Context, Pipeline, Retries, Schedule, Stage
from taskpipes.store.upsert import upsert

# Snapshots stored up to this long before the watermark are read again: a store stamps
# stored_at before its transaction commits, so its rows can become visible after rows
# stamped later. Re-reading them only recomputes the same buckets.
COMMIT_LAG = timedelta(minutes=10)
# A long stretch of new buckets (a backfill, a first rollup over old history) is rolled
# up a week at a time, so one batch stays small.
MAX_STRETCH_BUCKETS = 7 * 96
# A tick this far ahead of the clock is a typo, and would pin as_of in the future.
MAX_CLOCK_SKEW = timedelta(minutes=5)


def lock_state(session: Session) -> RollupState:
    """The state row, locked until commit: rollups run one at a time."""
    upsert(
        session,
        RollupState.__table__,
        [{"id": STATE_ID, "as_of": None, "stored_watermark": None}],
        key=("id",),
        update=(),
    )
    return session.scalars(
        select(RollupState).where(RollupState.id == STATE_ID).with_for_update()
    ).one()


def roll_up(session: Session) -> int:
    """Bring the buckets up to date with every snapshot stored since the last rollup.

    Returns the number of bucket rows written.
    """
    state = lock_state(session)
    seen = state.stored_watermark
    query = select(Snapshot.tick, Snapshot.stored_at).distinct()
    if state.stored_watermark is not None:
        query = query.where(Snapshot.stored_at > state.stored_watermark - COMMIT_LAG)
    stored = session.execute(query).all()
    if not stored:
        return 0
    written = 0
    for first, last in stretches(bucket_start(tick) for tick, _ in stored):
        for low, high in split_stretch(first, last, MAX_STRETCH_BUCKETS):
            written += roll_up_stretch(session, low, high)
    newest = max(stored_at for _, stored_at in stored)
    state.stored_watermark = max(newest, seen or newest)
    if written or state.stored_watermark != seen:
        state.generation += 1
    return written


def roll_up_stretch(session: Session, first: datetime, last: datetime) -> int:
    """Recompute the buckets first..last (starts, inclusive) of every repository with a
    snapshot there, and each one's next stored bucket. Writes only rows that changed."""
    counts = session.execute(
        select(Snapshot.repo_id, Snapshot.tick, Snapshot.stars).where(
            Snapshot.tick >= first, Snapshot.tick < last + BUCKET
        )
    )
    fresh: dict[int, dict[datetime, StarCount]] = defaultdict(dict)
    for (repo_id, start), count in last_per_bucket(StarCount(*row) for row in counts).items():
        fresh[repo_id][start] = count
    repo_ids = sorted(fresh)
    stored = _stored_buckets(session, repo_ids, first, last)
    before, after = _neighbours(session, repo_ids, first, last)
    known = {
        (b.repo_id, b.start): b
        for b in [*after.values(), *(b for bs in stored.values() for b in bs)]
    }
    changed = [
        bucket
        for repo_id in repo_ids
        for bucket in recompute_segment(
            before.get(repo_id), stored.get(repo_id, []), fresh[repo_id], after.get(repo_id)
        )
        if known.get((bucket.repo_id, bucket.start)) != bucket
    ]
    return upsert(
        session,
        RollupBucket.__table__,
        [bucket_row(b) for b in changed],
        key=("repo_id", "bucket_start"),
    )


def _stored_buckets(
    session: Session, repo_ids: list[int], first: datetime, last: datetime
) -> dict[int, list[Bucket]]:
    rows = session.scalars(
        select(RollupBucket)
        .where(
            RollupBucket.repo_id.in_(repo_ids),
            RollupBucket.bucket_start >= first,
            RollupBucket.bucket_start <= last,
        )
        .order_by(RollupBucket.repo_id, RollupBucket.bucket_start)
    )
    by_repo: dict[int, list[Bucket]] = defaultdict(list)
    for row in rows:
        by_repo[row.repo_id].append(as_bucket(row))
    return by_repo


def _neighbours(
    session: Session, repo_ids: list[int], first: datetime, last: datetime
) -> tuple[dict[int, int], dict[int, Bucket]]:
    """Per repository: the stars of its last bucket before `first`, and its first bucket
    after `last`. One index lookup each, driven by the repositories table."""
    own = RollupBucket.repo_id == Repository.id
    stars_before = (
        select(RollupBucket.stars)
        .where(own, RollupBucket.bucket_start < first)
        .order_by(RollupBucket.bucket_start.desc())
        .limit(1)
        .scalar_subquery()
    )
    next_start = (
        select(RollupBucket.bucket_start)
        .where(own, RollupBucket.bucket_start > last)
        .order_by(RollupBucket.bucket_start)
        .limit(1)
        .scalar_subquery()
    )
    edges = (
        select(Repository.id, stars_before.label("stars_before"), next_start.label("next_start"))
        .where(Repository.id.in_(repo_ids))
        .subquery()
    )
    rows = session.execute(
        select(edges.c.id, edges.c.stars_before, RollupBucket).outerjoin(
            RollupBucket,
            and_(
                RollupBucket.repo_id == edges.c.id, RollupBucket.bucket_start == edges.c.next_start
            ),
        )
    )
    before: dict[int, int] = {}
    after: dict[int, Bucket] = {}
    for repo_id, stars, following in rows:
        if stars is not None:
            before[repo_id] = stars
        if following is not None:
            after[repo_id] = as_bucket(following)
    return before, after


def as_bucket(row: RollupBucket) -> Bucket:
    return Bucket(row.repo_id, row.bucket_start, row.last_tick, row.stars, row.stars_gained)


def bucket_row(bucket: Bucket) -> dict[str, object]:
    return {
        "repo_id": bucket.repo_id,
        "bucket_start": bucket.start,
        "last_tick": bucket.last_tick,
        "stars": bucket.stars,
        "stars_gained": bucket.stars_gained,
    }


def refresh(session: Session, tick: datetime) -> int:
    """Advance as_of to `tick` (never back) and rebuild trending as of the newest rollup."""
    state = lock_state(session)
    as_of = tick if state.as_of is None else max(state.as_of, tick)
    if as_of != state.as_of:
        state.as_of, state.generation = as_of, state.generation + 1
    return refresh_trending(session, as_of)


def roll_up_tick(session: Session, tick: datetime) -> int:
    """One whole rollup in one transaction: buckets, then trending. For tests and benches."""
    return roll_up(session) + refresh(session, tick)


def checked_tick(ctx: Context) -> datetime:
    if ctx.tick > ctx.now + MAX_CLOCK_SKEW:
        raise PermanentError(
            f"rollup tick {ctx.tick.isoformat()} is in the future (now {ctx.now.isoformat()})"
        )
    return ctx.tick


def buckets_stage(ctx: Context) -> None:
    checked_tick(ctx)
    ctx.wrote(roll_up(ctx.session), "rollup_buckets")


def trending_stage(ctx: Context) -> None:
    ctx.wrote(refresh(ctx.session, checked_tick(ctx)), "trending")


def pages_stage(ctx: Context) -> None:
    """Refresh what the web pages read as of the newest rollup: the top page's sparklines
    and the ranked repositories' page data (its own stage: it reads days of buckets, which
    the trending stage's lookups never do).

    It is rebuilt only when a rollup changed something since the last rebuild: a tick
    behind as_of with nothing new (a backfill, a re-run) would redo a whole second of
    queries for the same rows, one tick after another on the locked state row."""
    checked_tick(ctx)
    state = lock_state(ctx.session)
    if state.as_of is None or state.pages_generation == state.generation:
        return
    charts, sparklines = refresh_page_data(ctx.session, state.as_of)
    state.pages_generation = state.generation
    ctx.wrote(charts, "repo_charts")
    ctx.wrote(sparklines, "sparklines")


# Every 15 minutes; after downtime every missed tick runs (up to a day), since each closes
# its own bucket. Database work only: a failure is a lost connection or a lock timeout,
# worth a few quick retries. It computes from stored snapshots, so it can backfill.
# Overlap "queue": it is stateful (each tick closes a bucket the next one builds on), so
# no tick may be dropped and two may not interleave their stages: a tick waits its turn.
rollup = Pipeline(
    "rollup",
    schedule=Schedule("*/15 * * * *", catchup="all", max_catchup=96),
    overlap="queue",
    stages=(
        Stage("buckets", buckets_stage),
        Stage("trending", trending_stage),
        Stage("pages", pages_stage),
    ),
    retries=Retries(max=5, min_backoff_ms=1_000, max_backoff_ms=120_000),
    computes_past=True,
)
