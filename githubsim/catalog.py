"""The simulator's repositories: snapshot records turned into star curves with stable ids.

Pure: build once from the CSV records; every question takes the simulated time `at`
(epoch seconds) as an argument.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from fractions import Fraction

from githubsim import identity
from githubsim.curve import (
    StarCurve,
    build_curve,
    monotone_points,
    slope_between,
    tail_slope,
)
from githubsim.data import DaySnapshot, RepoRecord


@dataclass(frozen=True)
class SimRepo:
    """One simulated repository; `original_name` is its name in the CSV (before renames)."""

    id: int
    original_name: str
    created: int  # epoch seconds
    license: dict[str, str] | None
    curve: StarCurve
    snapshots: tuple[DaySnapshot, ...]

    def stars_at(self, at: int) -> int:
        return self.curve.stars_at(at)

    def snapshot_near(self, at: int) -> DaySnapshot:
        """The snapshot day closest to `at`, for fields we do not interpolate."""
        return min(self.snapshots, key=lambda snapshot: abs(snapshot.day - at))


def day_points(record: RepoRecord) -> list[tuple[int, int]]:
    return [(snapshot.day, snapshot.stars) for snapshot in record.snapshots]


def median_growth(records: list[RepoRecord]) -> Fraction:
    """Median first-to-last-day slope, for repos seen on a single day only."""
    slopes = [
        slope_between(points[0], points[-1])
        for points in (monotone_points(day_points(record)) for record in records)
        if len(points) > 1
    ]
    return Fraction(statistics.median(slopes)) if slopes else Fraction(0)


def build_repo(record: RepoRecord, fallback_slope: Fraction) -> SimRepo:
    created = identity.created_epoch(record.full_name)
    points = day_points(record)
    return SimRepo(
        id=identity.repo_id(record.full_name),
        original_name=record.full_name,
        created=created,
        license=identity.license_for(record.full_name),
        curve=build_curve(created, points, tail_slope(points, fallback_slope)),
        snapshots=record.snapshots,
    )


def build_catalog(records: list[RepoRecord]) -> dict[int, SimRepo]:
    """Repositories by id."""
    fallback = median_growth(records)
    repos = (build_repo(record, fallback) for record in records)
    return {repo.id: repo for repo in repos}
