"""The pages' contents, assembled from taskpipes.web.reads: every read is bounded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from db.models import Repository, StargazerCursor
from pipelines.buckets import BUCKET, HISTORY_BUCKETS, Point
from pipelines.star_history import day_of
from taskpipes.api.history import bucket_closes, read_points
from taskpipes.web import reads
from taskpipes.web.charts import Chart, line_chart

# Each history table covers this long before as_of (15m: ~96 points, 1h: ~168, 1d: ~30).
HISTORY_SPANS = {"15m": timedelta(hours=24), "1h": timedelta(days=7), "1d": timedelta(days=30)}
# The most moments a long chart samples (one index probe each).
CHART_SAMPLES = 60


@dataclass(frozen=True)
class History:
    bucket: str
    span: str
    points: list[Point]
    chart: Chart | None


@dataclass(frozen=True)
class RepoPage:
    repo: Repository
    ranking: tuple[int, int] | None
    cursor: StargazerCursor | None
    star_chart: Chart | None
    histories: list[History]
    rank_chart: Chart | None


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
        first = reads.first_bucket(connection, repo.id)
        if first is not None and first < as_of:
            moments = reads.spaced(first + BUCKET, as_of, CHART_SAMPLES)
            closes = bucket_closes(connection, repo.id, moments)
            ours = sorted({(close.start, close.stars) for close in closes if close is not None})
    ranks = reads.ranks_at(
        connection, repo.id, reads.spaced(repo.first_seen, repo.last_seen, CHART_SAMPLES)
    )
    return ChartData(as_of, histories, ranks, ours)


def repo_page(
    connection: Connection,
    repo: Repository,
    cursor: StargazerCursor | None,
    as_of: datetime | None,
    precomputed: ChartData | None,
) -> RepoPage:
    """The page from the rollup's precomputed data when it is as of `as_of`, else live."""
    if precomputed is not None and precomputed.as_of == as_of:
        data = precomputed
    else:
        data = chart_data(connection, repo, as_of)
    return RepoPage(
        repo=repo,
        ranking=reads.ranking_of(connection, repo.id),
        cursor=cursor,
        star_chart=star_chart(connection, repo, cursor, data.ours),
        histories=[history_of(repo, name, points) for name, points in data.histories.items()],
        rank_chart=line_chart(
            f"Rank of {repo.full_name} in the top 100 over time",
            [("rank", "line-rank", data.ranks)],
            inverted=True,
            unit="rank",
        ),
    )


def history_of(repo: Repository, name: str, points: list[Point]) -> History:
    label = {"15m": "24 hours", "1h": "7 days", "1d": "30 days"}[name]
    chart = line_chart(
        f"{repo.full_name}: stars per {name} bucket over the last {label}",
        [("stars", "line-ours", [(p.start, p.stars) for p in points])],
    )
    return History(name, label, points, chart)


def star_chart(
    connection: Connection,
    repo: Repository,
    cursor: StargazerCursor | None,
    ours: list[tuple[datetime, int]],
) -> Chart | None:
    """The stargazer history where it is exact, then our own snapshots from there on."""
    stargazed: list[tuple[datetime, int]] = []
    if cursor is not None:
        # A capped list is exact before the day of its last listed star; a complete one
        # up to the run (its last day is complete then).
        until = day_of(cursor.as_of) + (timedelta(days=1) if cursor.complete else timedelta())
        # A day's count holds at its end.
        stargazed = [
            (start + timedelta(days=1), count)
            for start, count in reads.star_days(connection, repo.id, until, CHART_SAMPLES)
        ]
    if stargazed:
        ours = [(t, stars) for t, stars in ours if t >= stargazed[-1][0]]
    return line_chart(
        f"Star history of {repo.full_name}",
        [
            ("from GitHub's stargazer list", "line-stargazers", stargazed),
            ("from our snapshots", "line-ours", ours),
        ],
    )
