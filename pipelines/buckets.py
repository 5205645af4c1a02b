"""15-minute star buckets per repository: the pure core of the rollup and of history.

A bucket [start, start + 15m) of one repository holds the stars at its last snapshot and
`stars_gained`: those stars minus the stars at the repository's last snapshot before the
bucket, or None when there is none. `full_rollup` computes every bucket from scratch;
`recompute_segment` redoes a stretch of one repository's chain after new snapshots.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

BUCKET = timedelta(minutes=15)
# Coarser history buckets, built from the 15-minute ones.
HISTORY_BUCKETS = {"15m": BUCKET, "1h": timedelta(hours=1), "1d": timedelta(days=1)}
# Buckets are aligned on multiples of their size since this instant.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class StarCount:
    """One snapshot reduced to what the rollup needs."""

    repo_id: int
    tick: datetime
    stars: int


@dataclass(frozen=True)
class Bucket:
    """One repository's rolled-up bucket."""

    repo_id: int
    start: datetime
    last_tick: datetime
    stars: int
    stars_gained: int | None


def floor_to(moment: datetime, size: timedelta) -> datetime:
    """The start of the `size`-long bucket holding `moment` (UTC, aligned on EPOCH)."""
    return moment - (moment - EPOCH) % size


def bucket_start(tick: datetime) -> datetime:
    return floor_to(tick, BUCKET)


def last_per_bucket(counts: Iterable[StarCount]) -> dict[tuple[int, datetime], StarCount]:
    """The last snapshot of each (repository, bucket start)."""
    last: dict[tuple[int, datetime], StarCount] = {}
    for count in counts:
        key = (count.repo_id, bucket_start(count.tick))
        if key not in last or count.tick > last[key].tick:
            last[key] = count
    return last


def chain(stars_before: int | None, lasts: Sequence[StarCount]) -> list[Bucket]:
    """Buckets of one repository from their last snapshots, oldest first, each gaining
    against the one before (the first against `stars_before`)."""
    buckets = []
    previous = stars_before
    for last in lasts:
        gained = None if previous is None else last.stars - previous
        buckets.append(Bucket(last.repo_id, bucket_start(last.tick), last.tick, last.stars, gained))
        previous = last.stars
    return buckets


def full_rollup(counts: Iterable[StarCount]) -> list[Bucket]:
    """Every bucket of every repository, recomputed from all snapshots: the reference."""
    by_repo: dict[int, list[StarCount]] = defaultdict(list)
    for (repo_id, _), last in last_per_bucket(counts).items():
        by_repo[repo_id].append(last)
    return [
        bucket
        for repo_id in sorted(by_repo)
        for bucket in chain(None, sorted(by_repo[repo_id], key=lambda c: c.tick))
    ]


def recompute_segment(
    stars_before: int | None,
    stored: Sequence[Bucket],
    fresh: Mapping[datetime, StarCount],
    after: Bucket | None,
) -> list[Bucket]:
    """One repository's buckets from the first changed one to the first unchanged one after.

    `stored`: its stored buckets inside the changed stretch; `fresh`: the last snapshot of
    each bucket the new snapshots touched; `after`: its first stored bucket past the stretch,
    whose gain depends on the stretch's last stars; `stars_before`: the stars of its bucket
    before the stretch. Returns the stretch's buckets and `after`, gains recomputed.
    """
    lasts = {b.start: StarCount(b.repo_id, b.last_tick, b.stars) for b in stored}
    lasts.update(fresh)
    if after is not None:
        lasts[after.start] = StarCount(after.repo_id, after.last_tick, after.stars)
    return chain(stars_before, [lasts[start] for start in sorted(lasts)])


def stretches(starts: Iterable[datetime]) -> list[tuple[datetime, datetime]]:
    """Runs of consecutive bucket starts as (first, last) pairs, oldest first."""
    runs: list[tuple[datetime, datetime]] = []
    for start in sorted(set(starts)):
        if runs and start - runs[-1][1] == BUCKET:
            runs[-1] = (runs[-1][0], start)
        else:
            runs.append((start, start))
    return runs


def split_stretch(first: datetime, last: datetime, most: int) -> list[tuple[datetime, datetime]]:
    """Cut a stretch into pieces of at most `most` buckets, so one batch stays bounded."""
    pieces = []
    while first <= last:
        end = min(last, first + BUCKET * (most - 1))
        pieces.append((first, end))
        first = end + BUCKET
    return pieces


def coarsen(buckets: Sequence[Bucket], size: timedelta) -> list[Bucket]:
    """Merge one repository's 15-minute buckets (oldest first) into `size`-long ones.

    A coarse bucket's stars are its last 15-minute bucket's; its gain is those stars minus
    the stars before it, read off its first 15-minute bucket (stars - stars_gained), so it
    is None exactly when the repository has no snapshot before the coarse bucket.
    """
    groups: dict[datetime, list[Bucket]] = defaultdict(list)
    for bucket in buckets:
        groups[floor_to(bucket.start, size)].append(bucket)
    merged = []
    for start, group in groups.items():
        first, last = group[0], group[-1]
        before = None if first.stars_gained is None else first.stars - first.stars_gained
        gained = None if before is None else last.stars - before
        merged.append(Bucket(first.repo_id, start, last.last_tick, last.stars, gained))
    return merged


@dataclass(frozen=True)
class Close:
    """A repository's latest 15-minute bucket before some moment."""

    start: datetime
    stars: int


@dataclass(frozen=True)
class Point:
    """One history point: the bucket starting at `start`, as the history API defines it."""

    start: datetime
    stars: int
    stars_gained: int | None


def points_between(bounds: Sequence[datetime], closes: Sequence[Close | None]) -> list[Point]:
    """History points [bounds[i], bounds[i+1]) from the latest bucket before each bound.

    A point exists when the latest bucket before its end starts inside it; its gain is
    against the latest bucket before its start (None without one): what coarsen gives,
    read from len(bounds) index probes instead of every bucket in between.
    """
    points = []
    for i in range(len(bounds) - 1):
        before, close = closes[i], closes[i + 1]
        if close is None or close.start < bounds[i]:
            continue
        gained = None if before is None else close.stars - before.stars
        points.append(Point(bounds[i], close.stars, gained))
    return points
