"""Sparklines: the served top 100's last 7 days of 1h stars, drawn once per rollup.

The web page's top 100 needs 168 hourly points for each of 100 repositories. They are the
1h history each ranked repository's page data already holds (pipelines.repo_charts), so
the rollup draws each polyline from those points and stores it as one short row.
"""

from __future__ import annotations

from datetime import datetime

from pipelines.buckets import HISTORY_BUCKETS, Point, floor_to
from pipelines.charts import sparkline_points

HOUR = HISTORY_BUCKETS["1h"]


def sparkline_row(
    repo_id: int, points: list[Point], since: datetime, as_of: datetime
) -> dict[str, object]:
    """One repository's sparkline row from its 1h points starting in [since, as_of)."""
    origin = floor_to(since, HOUR)
    hours = [round((p.start - origin) / HOUR) for p in points]
    return {
        "repo_id": repo_id,
        "as_of": as_of,
        "points": sparkline_points(hours, [p.stars for p in points]),
        "point_count": len(points),
        "first_stars": points[0].stars,
        "last_stars": points[-1].stars,
    }
