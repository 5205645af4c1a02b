"""A repository's star count as a function of time, and its exact inverse.

The curve is piecewise linear through (created_at, 0) and the snapshot days, with the
slope of the nearest segment after the last day. Slopes are exact fractions so that
`stars_at` and `starred_at` agree to the second: stargazer i is listed at time t exactly
when i < stars_at(t), which keeps stargazer pages consistent with the repo's count.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Segment:
    """The curve from `start` until the next segment starts."""

    start: int  # epoch seconds
    stars: int  # exact value at `start`
    slope: Fraction  # stars per second, never negative


class StarCurve:
    """Monotone non-decreasing star count; zero before the first segment."""

    def __init__(self, segments: tuple[Segment, ...]) -> None:
        self.segments = segments
        self._starts = [segment.start for segment in segments]
        self._values = [segment.stars for segment in segments]

    def stars_at(self, ts: int) -> int:
        position = bisect_right(self._starts, ts) - 1
        if position < 0:
            return 0
        segment = self.segments[position]
        return segment.stars + math.floor((ts - segment.start) * segment.slope)

    def starred_at(self, index: int) -> int | None:
        """First whole second at which the count reaches index + 1 (None: never)."""
        target = index + 1
        # The crossing segment is the last one that starts strictly below the target.
        segment = self.segments[bisect_left(self._values, target) - 1]
        if segment.slope == 0:
            return None
        return segment.start + math.ceil((target - segment.stars) / segment.slope)


def monotone_points(points: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Running maximum of the star counts: a dip in the data becomes a flat stretch."""
    result: list[tuple[int, int]] = []
    best = 0
    for ts, stars in points:
        best = max(best, stars)
        result.append((ts, best))
    return result


def slope_between(first: tuple[int, int], second: tuple[int, int]) -> Fraction:
    return Fraction(second[1] - first[1], second[0] - first[0])


def build_curve(created: int, days: list[tuple[int, int]], tail_slope: Fraction) -> StarCurve:
    """Curve through (created, 0) and the (day, stars) points, then `tail_slope` onwards."""
    points = monotone_points([(created, 0), *days])
    segments = [
        Segment(start=ts, stars=stars, slope=slope_between((ts, stars), points[i + 1]))
        for i, (ts, stars) in enumerate(points[:-1])
    ]
    last_ts, last_stars = points[-1]
    segments.append(Segment(start=last_ts, stars=last_stars, slope=max(tail_slope, Fraction(0))))
    return StarCurve(tuple(segments))


def tail_slope(days: list[tuple[int, int]], fallback: Fraction) -> Fraction:
    """Slope of the last day-to-day segment, or `fallback` with a single known day."""
    points = monotone_points(days)
    if len(points) < 2:
        return fallback
    return slope_between(points[-2], points[-1])
