"""A repository page's history data: what the page reads, and what the rollup precomputes
for the ranked repositories (pipelines.repo_charts) with this very function."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from db.models import Repository
from pipelines.buckets import BUCKET, HISTORY_BUCKETS, Point
from pipelines.history_reads import bucket_closes, first_bucket, ranks_at, read_points, spaced

# Each history table covers this long before as_of (15m: ~96 points, 1h: ~168, 1d: ~30).
HISTORY_SPANS = {"15m": timedelta(hours=24), "1h": timedelta(days=7), "1d": timedelta(days=30)}


# The most moments a long chart samples (one index probe each).
CHART_SAMPLES = 60


@dataclass(frozen=True)
class ChartData:
    """What a repository page reads from the history. Computed per request for a
    repository outside the ranking; precomputed by the rollup, with chart_data itself,
    for the ranked ones (pipelines.repo_charts)."""

    as_of: datetime | None
    histories: dict[str, list[Point]]
    ranks: list[tuple[datetime, int]]
    # Our own star samples from the repository's first bucket to as_of.
    ours: list[tuple[datetime, int]]

    def to_json(self) -> dict[str, Any]:
        return {
            "as_of": _iso(self.as_of),
            "histories": {
                name: [[p.start.isoformat(), p.stars, p.stars_gained] for p in points]
                for name, points in self.histories.items()
            },
            "ranks": [[t.isoformat(), rank] for t, rank in self.ranks],
            "ours": [[t.isoformat(), stars] for t, stars in self.ours],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChartData:
        at = datetime.fromisoformat
        return cls(
            as_of=None if data["as_of"] is None else at(data["as_of"]),
            histories={
                name: [Point(at(start), stars, gained) for start, stars, gained in points]
                for name, points in data["histories"].items()
            },
            ranks=[(at(t), rank) for t, rank in data["ranks"]],
            ours=[(at(t), stars) for t, stars in data["ours"]],
        )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def chart_data(connection: Connection, repo: Repository, as_of: datetime | None) -> ChartData:
    """Every history read of a repository page: bounded index probes and range scans."""
    histories = {}
    ours: list[tuple[datetime, int]] = []
    if as_of is not None:
        histories = {
            name: read_points(connection, repo.id, HISTORY_BUCKETS[name], as_of - span, as_of)
            for name, span in HISTORY_SPANS.items()
        }
        first = first_bucket(connection, repo.id)
        if first is not None and first < as_of:
            moments = spaced(first + BUCKET, as_of, CHART_SAMPLES)
            closes = bucket_closes(connection, repo.id, moments)
            ours = sorted({(close.start, close.stars) for close in closes if close is not None})
    ranks = ranks_at(connection, repo.id, spaced(repo.first_seen, repo.last_seen, CHART_SAMPLES))
    return ChartData(as_of, histories, ranks, ours)
