"""GET /api/repos/{owner}/{name}/history: one repository's stars per 15m, 1h or 1d bucket.

Served from the 15-minute rollup rows: by one index range scan on (repo_id, bucket_start)
for 15m, by one index probe per bucket boundary for 1h and 1d (read_points). Only buckets that hold
a snapshot appear, and only buckets that start before `as_of` (the newest rollup tick):
the newest 1h or 1d point may therefore cover only the part of its bucket before `as_of`.
`stars_gained` is null when the repository has no snapshot before the bucket.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel
from sqlalchemy import Connection, Subquery, func, literal, select, text, union_all
from sqlalchemy.orm import Session, aliased

from db.models import STATE_ID, Repository, RollupBucket, RollupState, UTCDateTime
from pipelines.buckets import BUCKET, HISTORY_BUCKETS, Close, Point, floor_to, points_between
from taskpipes.api.deps import SessionDep
from taskpipes.api.schemas import NotFound
from taskpipes.api.security import bounded

router = APIRouter()

BucketName = Literal["15m", "1h", "1d"]
# Without `since`, a history covers this long before `until`.
DEFAULT_SPAN = timedelta(days=7)
# At most this many points per answer: the newest ones.
MAX_POINTS = 2000
# repositories.full_name is at most this long; longer names cannot exist.
MAX_FULL_NAME = 200


class HistoryPoint(BaseModel):
    start: datetime
    stars: int
    stars_gained: int | None


class HistoryResponse(BaseModel):
    id: int
    full_name: str
    bucket: BucketName
    as_of: datetime | None
    points: list[HistoryPoint]


@router.get(
    "/api/repos/{owner}/{name}/history",
    response_model=HistoryResponse,
    responses={404: {"model": NotFound, "description": "no repository has this name now"}},
)
def history(
    owner: str,
    name: str,
    session: SessionDep,
    bucket: BucketName = "15m",
    since: datetime | None = None,
    until: datetime | None = None,
) -> HistoryResponse:
    """Points with `since` <= start < `until` (ISO 8601; no zone means UTC). Defaults:
    `until` = as_of, `since` = 7 days before `until`. Oldest first, at most 2000."""
    full_name = f"{owner}/{name}"
    repo = find_repository(session, full_name)
    if repo is None:
        raise HTTPException(status_code=404, detail=f"repository {bounded(full_name)} not found")
    as_of = session.scalar(select(RollupState.as_of).where(RollupState.id == STATE_ID))
    points: list[Point] = []
    if as_of is not None:
        end = min(as_utc(until), as_of) if until is not None else as_of
        start = as_utc(since) if since is not None else minus(end, DEFAULT_SPAN)
        points = read_points(session.connection(), repo.id, HISTORY_BUCKETS[bucket], start, end)
    return HistoryResponse(
        id=repo.id,
        full_name=repo.full_name,
        bucket=bucket,
        as_of=as_of,
        points=[
            HistoryPoint(start=p.start, stars=p.stars, stars_gained=p.stars_gained) for p in points
        ],
    )


def find_repository(session: Session, full_name: str) -> Repository | None:
    """The repository named `full_name` now; a name no repository could have finds none."""
    if len(full_name) > MAX_FULL_NAME or not full_name.isprintable() or not _encodable(full_name):
        return None
    return session.scalars(
        select(Repository)
        .where(Repository.full_name == full_name)
        .order_by(Repository.last_seen.desc())
    ).first()


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from odd percent-escapes
        return False
    return True


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


def as_utc(moment: datetime) -> datetime:
    """A query time in UTC (no zone means UTC), clamped to what datetime can hold."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return (
            datetime.min.replace(tzinfo=UTC)
            if moment.year == 1
            else datetime.max.replace(tzinfo=UTC)
        )


def minus(moment: datetime, span: timedelta) -> datetime:
    try:
        return moment - span
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)
