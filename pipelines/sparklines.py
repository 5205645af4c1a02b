"""Sparklines: the served top 100's last 7 days of 1h stars, drawn once per rollup.

The web page's top 100 needs 168 hourly points for each of 100 repositories: 67,200
15-minute bucket rows. Read per request that is far from a 10 ms page, so the rollup reads
them once after trending (one range scan per repository, bounded by the 7-day window, never
by the length of the history) and stores each repository's polyline as one short row.
The points are the /api/repos/{owner}/{name}/history?bucket=1h points of the same window.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from db.models import LatestRanking, RollupBucket, Sparkline
from pipelines.buckets import HISTORY_BUCKETS, Bucket, coarsen, floor_to
from taskpipes.web.charts import sparkline_points

# A sparkline covers this long before as_of, like the history API's default span.
SPAN = timedelta(days=7)
HOUR = HISTORY_BUCKETS["1h"]


def hourly(buckets: list[Bucket], since: datetime) -> list[Bucket]:
    """One repository's 15-minute buckets (oldest first) as 1h points starting at or
    after `since`: the history API's 1h points."""
    return [point for point in coarsen(buckets, HOUR) if point.start >= since]


def sparkline_row(points: list[Bucket], since: datetime, as_of: datetime) -> dict[str, object]:
    origin = floor_to(since, HOUR)
    hours = [round((p.start - origin) / HOUR) for p in points]
    return {
        "repo_id": points[0].repo_id,
        "as_of": as_of,
        "points": sparkline_points(hours, [p.stars for p in points]),
        "point_count": len(points),
        "first_stars": points[0].stars,
        "last_stars": points[-1].stars,
    }


def refresh_sparklines(session: Session, as_of: datetime) -> int:
    """Replace every sparkline with the served ranking's as of `as_of`; returns rows written."""
    session.execute(delete(Sparkline))
    since = as_of - SPAN
    rows = session.execute(
        select(
            RollupBucket.repo_id,
            RollupBucket.bucket_start,
            RollupBucket.last_tick,
            RollupBucket.stars,
            RollupBucket.stars_gained,
        )
        .where(
            RollupBucket.repo_id.in_(select(LatestRanking.repo_id)),
            RollupBucket.bucket_start >= since,
            RollupBucket.bucket_start < as_of,
        )
        .order_by(RollupBucket.repo_id, RollupBucket.bucket_start)
    )
    by_repo: dict[int, list[Bucket]] = defaultdict(list)
    for row in rows:
        by_repo[row.repo_id].append(Bucket(*row))
    lines = [hourly(buckets, since) for buckets in by_repo.values()]
    entries = [sparkline_row(points, since, as_of) for points in lines if points]
    if entries:
        session.execute(insert(Sparkline), entries)
    return len(entries)
