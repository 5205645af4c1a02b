"""The pages' contents, assembled from taskpipes.web.reads: every read is bounded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection
from sqlalchemy.orm import Session

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


def repo_page(
    session: Session,
    connection: Connection,
    repo: Repository,
    cursor: StargazerCursor | None,
    as_of: datetime | None,
) -> RepoPage:
    histories = [] if as_of is None else [histories_of(session, connection, repo, as_of, name)
                                           for name in HISTORY_SPANS]  # fmt: skip
    ranks = reads.ranks_at(
        connection, repo.id, reads.spaced(repo.first_seen, repo.last_seen, CHART_SAMPLES)
    )
    return RepoPage(
        repo=repo,
        ranking=reads.ranking_of(connection, repo.id),
        cursor=cursor,
        star_chart=star_chart(connection, repo, cursor, as_of),
        histories=histories,
        rank_chart=line_chart(
            f"Rank of {repo.full_name} in the top 100 over time",
            [("rank", "line-rank", ranks)],
            inverted=True,
            unit="rank",
        ),
    )


def histories_of(
    session: Session, connection: Connection, repo: Repository, as_of: datetime, name: str
) -> History:
    size, since = HISTORY_BUCKETS[name], as_of - HISTORY_SPANS[name]
    points = read_points(connection, repo.id, size, since, as_of)
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
    as_of: datetime | None,
) -> Chart | None:
    """The stargazer history where it is exact, then our own snapshots from there on."""
    stargazed: list[tuple[datetime, int]] = []
    ours_from = reads.first_bucket(connection, repo.id)
    if cursor is not None:
        # A capped list is exact before the day of its last listed star; a complete one
        # up to the run (its last day is complete then).
        until = day_of(cursor.as_of) + (timedelta(days=1) if cursor.complete else timedelta())
        # A day's count holds at its end.
        stargazed = [
            (start + timedelta(days=1), count)
            for start, count in reads.star_days(connection, repo.id, until, CHART_SAMPLES)
        ]
        if ours_from is not None and stargazed:
            ours_from = max(ours_from, stargazed[-1][0])
    ours: list[tuple[datetime, int]] = []
    if ours_from is not None and as_of is not None and ours_from < as_of:
        moments = reads.spaced(ours_from + BUCKET, as_of, CHART_SAMPLES)
        closes = bucket_closes(connection, repo.id, moments)
        ours = [(close.start, close.stars) for close in closes if close is not None]
    return line_chart(
        f"Star history of {repo.full_name}",
        [
            ("from GitHub's stargazer list", "line-stargazers", stargazed),
            ("from our snapshots", "line-ours", sorted(set(ours))),
        ],
    )
