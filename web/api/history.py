"""GET /api/repos/{owner}/{name}/history: one repository's stars per 15m, 1h or 1d bucket.

Served from the 15-minute rollup rows: by one index range scan on (repo_id, bucket_start)
for 15m, by one index probe per bucket boundary for 1h and 1d (read_points). Only buckets that hold
a snapshot appear, and only buckets that start before `as_of` (the newest rollup tick):
the newest 1h or 1d point may therefore cover only the part of its bucket before `as_of`.
`stars_gained` is null when the repository has no snapshot before the bucket.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import STATE_ID, Repository, RollupState
from pipelines.buckets import HISTORY_BUCKETS, Point
from pipelines.history_reads import minus, read_points
from taskpipes.http.deps import SessionDep
from taskpipes.http.security import bounded
from web.api.schemas import NotFound

router = APIRouter()

BucketName = Literal["15m", "1h", "1d"]
# Without `since`, a history covers this long before `until`.
DEFAULT_SPAN = timedelta(days=7)
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
