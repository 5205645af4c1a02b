"""Bounded reads of a repository's history: index probes and range scans, never a table scan.

Shared by the rollup's precomputed page data (pipelines.page_data), the history API and
the web pages.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Subquery, func, literal, select, text, union_all
from sqlalchemy.orm import aliased

from db.models import RollupBucket, Snapshot
from pipelines.buckets import BUCKET, Close, Point, floor_to, points_between
from pipelines.charts import evenly
from taskpipes.store.tables import UTCDateTime

# At most this many points per answer: the newest ones.
MAX_POINTS = 2000


def read_points(
    connection: Connection, repo_id: int, size: timedelta, since: datetime, until: datetime
) -> list[Point]:
    """The newest points of `size` starting in [since, until), oldest first, at most
    MAX_POINTS. 15-minute points are rows of one index range scan; 1h and 1d points come
    from one index probe per bucket boundary (what pipelines.buckets.coarsen would merge,
    without reading every 15-minute row in between)."""
    since = max(since, minus(until, size * MAX_POINTS))
    if since >= until:
        return []
    if size == BUCKET:
        rows = connection.execute(
            select(RollupBucket.bucket_start, RollupBucket.stars, RollupBucket.stars_gained)
            .where(
                RollupBucket.repo_id == repo_id,
                RollupBucket.bucket_start >= since,
                RollupBucket.bucket_start < until,
            )
            .order_by(RollupBucket.bucket_start)
        )
        return [Point(*row) for row in rows]
    bounds = bucket_bounds(size, since, until)
    return points_between(bounds, bucket_closes(connection, repo_id, bounds))


def bucket_bounds(size: timedelta, since: datetime, until: datetime) -> list[datetime]:
    """The starts of the `size` buckets that begin in [since, until), then `until`."""
    start = floor_to(since, size)
    start += size if start < since else timedelta()
    bounds = []
    while start < until:
        bounds.append(start)
        start += size
    return [*bounds, until]


def moments_table(connection: Connection, moments: Sequence[datetime]) -> Subquery:
    """The moments as a one-column table `at`. PostgreSQL gets one array parameter: a
    UNION ALL of 120 SELECTs costs it milliseconds to plan; SQLite plans that in microseconds.
    """
    if connection.dialect.name == "postgresql":
        naive = [m.astimezone(UTC).replace(tzinfo=None) for m in moments]
        unnest = text("SELECT unnest(CAST(:moments AS timestamp[])) AS at")
        return unnest.bindparams(moments=naive).columns(at=UTCDateTime()).subquery("moments")
    arms = [select(literal(m, UTCDateTime()).label("at")) for m in moments]
    return (union_all(*arms) if len(arms) > 1 else arms[0]).subquery("moments")


def bucket_closes(
    connection: Connection, repo_id: int, moments: Sequence[datetime]
) -> list[Close | None]:
    """For each moment, the repository's latest 15-minute bucket starting before it: one
    index probe per moment, in one statement."""
    if not moments:
        return []
    at = moments_table(connection, moments)
    inner = aliased(RollupBucket)
    latest = (
        select(func.max(inner.bucket_start))
        .where(inner.repo_id == repo_id, inner.bucket_start < at.c.at)
        .correlate(at)
        .scalar_subquery()
    )
    rows = connection.execute(
        select(RollupBucket.bucket_start, RollupBucket.stars)
        .where(
            RollupBucket.repo_id == repo_id,
            RollupBucket.bucket_start.in_(select(latest).select_from(at)),
        )
        .order_by(RollupBucket.bucket_start)
    ).all()
    closes = [Close(*row) for row in rows]
    starts = [close.start for close in closes]
    # The latest close starting before each moment: the one left of its insertion point.
    found = (bisect_left(starts, moment) for moment in moments)
    return [closes[i - 1] if i else None for i in found]


def minus(moment: datetime, span: timedelta) -> datetime:
    try:
        return moment - span
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


def spaced(start: datetime, end: datetime, most: int) -> list[datetime]:
    """At most `most` moments from `start` to `end`, evenly spread to the minute."""
    minutes = max(0, int((end - start) / timedelta(minutes=1)))
    return [start + timedelta(minutes=m) for m in evenly(0, minutes, most)][:-1] + [end]


def ranks_at(
    connection: Connection, repo_id: int, moments: Sequence[datetime]
) -> list[tuple[datetime, int]]:
    """(tick, rank) at the latest snapshot tick at or before each moment, for the moments
    whose snapshot holds the repository: two index probes per moment, in one statement."""
    if not moments:
        return []
    at = moments_table(connection, moments)
    inner = aliased(Snapshot)
    tick = select(func.max(inner.tick)).where(inner.tick <= at.c.at).correlate(at).scalar_subquery()
    rows = connection.execute(
        select(Snapshot.tick, Snapshot.rank)
        .where(Snapshot.repo_id == repo_id, Snapshot.tick.in_(select(tick).select_from(at)))
        .order_by(Snapshot.tick)
    )
    return [(row.tick, row.rank) for row in rows]


def first_bucket(connection: Connection, repo_id: int) -> datetime | None:
    return connection.scalar(
        select(RollupBucket.bucket_start)
        .where(RollupBucket.repo_id == repo_id)
        .order_by(RollupBucket.bucket_start)
        .limit(1)
    )
