"""trending: repositories ranked by stars gained over 1h, 24h and 7d, as of a rollup tick.

stars_gained(w) = stars(latest snapshot before T) - stars(latest snapshot before T - w);
the ranking holds the repositories of the latest snapshot tick before T that have both.
The ranking is pure; the refresh answers "latest snapshot before T - w" from the 15-minute
buckets with one index lookup per repository, never from the snapshot history.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from db.models import RollupBucket, Snapshot, TrendingEntry
from pipelines.buckets import StarCount, bucket_start

# The trending windows the API serves, by name.
WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}


@dataclass(frozen=True)
class Trend:
    """One row of one trending ranking."""

    rank: int
    repo_id: int
    stars: int
    stars_gained: int


def rank_trending(current: Mapping[int, int], earlier: Mapping[int, int]) -> list[Trend]:
    """Rank `current` stars by the gain over `earlier`; repositories absent there drop out.

    Ordered by stars_gained desc, then stars desc, then id asc.
    """
    rows = [
        (repo_id, stars, stars - earlier[repo_id])
        for repo_id, stars in current.items()
        if repo_id in earlier
    ]
    rows.sort(key=lambda row: (-row[2], -row[1], row[0]))
    return [
        Trend(rank, repo_id, stars, gained) for rank, (repo_id, stars, gained) in enumerate(rows, 1)
    ]


def latest_stars(counts: Iterable[StarCount], before: datetime) -> dict[int, int]:
    """Per repository, the stars at its latest snapshot with tick < `before`."""
    latest: dict[int, StarCount] = {}
    for count in counts:
        if count.tick < before and (
            count.repo_id not in latest or count.tick > latest[count.repo_id].tick
        ):
            latest[count.repo_id] = count
    return {repo_id: count.stars for repo_id, count in latest.items()}


def full_trending(counts: Iterable[StarCount], as_of: datetime, window: timedelta) -> list[Trend]:
    """The trending ranking recomputed from all snapshots: the reference."""
    counts = list(counts)
    ticks = [c.tick for c in counts if c.tick < as_of]
    if not ticks:
        return []
    newest = max(ticks)
    current = {c.repo_id: c.stars for c in counts if c.tick == newest}
    return rank_trending(current, latest_stars(counts, as_of - window))


def refresh_trending(session: Session, as_of: datetime) -> int:
    """Replace every window's ranking with the one as of `as_of`; returns the rows written."""
    session.execute(delete(TrendingEntry))
    newest = session.scalar(select(func.max(Snapshot.tick)).where(Snapshot.tick < as_of))
    if newest is None:
        return 0
    rows = session.execute(select(Snapshot.repo_id, Snapshot.stars).where(Snapshot.tick == newest))
    current = {repo_id: stars for repo_id, stars in rows}
    # Plain dicts, not dataclasses.asdict (which deep-copies every field): 3,000 rows at
    # TASKPIPES_TOP_N=1000.
    entries = [
        {
            "span": span,
            "as_of": as_of,
            "rank": trend.rank,
            "repo_id": trend.repo_id,
            "stars": trend.stars,
            "stars_gained": trend.stars_gained,
        }
        for span, window in WINDOWS.items()
        for trend in rank_trending(current, stars_before(session, newest, as_of - window))
    ]
    if entries:
        session.execute(insert(TrendingEntry), entries)
    return len(entries)


def stars_before(session: Session, tick: datetime, moment: datetime) -> dict[int, int]:
    """For the repositories of snapshot `tick`: the stars at their latest snapshot before
    `moment`, from the bucket rows before `moment`'s bucket, then any snapshot inside that
    bucket but before `moment` (none when `moment` falls on a bucket boundary)."""
    aligned = bucket_start(moment)
    last_bucket_stars = (
        select(RollupBucket.stars)
        .where(RollupBucket.repo_id == Snapshot.repo_id, RollupBucket.bucket_start < aligned)
        .order_by(RollupBucket.bucket_start.desc())
        .limit(1)
        .scalar_subquery()
    )
    rows = session.execute(select(Snapshot.repo_id, last_bucket_stars).where(Snapshot.tick == tick))
    stars = {repo_id: value for repo_id, value in rows if value is not None}
    if aligned < moment:
        inside = session.execute(
            select(Snapshot.repo_id, Snapshot.stars)
            .where(Snapshot.tick >= aligned, Snapshot.tick < moment)
            .order_by(Snapshot.tick)
        )
        stars.update({repo_id: count for repo_id, count in inside})
    return stars
