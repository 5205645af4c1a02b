"""The pages' contents, assembled from web.pages.reads: every read is bounded."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from markupsafe import Markup
from sqlalchemy import Connection

from db.models import Repository, StargazerCursor
from pipelines.buckets import Point
from pipelines.charts import Chart, line_chart
from pipelines.page_data import CHART_SAMPLES, ChartData, chart_data
from pipelines.star_history import day_of
from web.pages import reads


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
    connection: Connection,
    repo: Repository,
    cursor: StargazerCursor | None,
    as_of: datetime | None,
    precomputed: ChartData | None,
    log: bool = False,
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
        star_chart=star_chart(connection, repo, cursor, data.ours, log),
        histories=[history_of(repo, name, points) for name, points in data.histories.items()],
        rank_chart=drawn(
            line_chart(
                f"Rank of {repo.full_name} in the top 100 over time",
                [("rank", "line-rank", data.ranks)],
                inverted=True,
                unit="rank",
            )
        ),
    )


def drawn(chart: Chart | None) -> Chart | None:
    """The chart with its polylines' points as Markup: numbers pipelines.charts wrote
    (points_attr), a few kB a page that escaping and the bidi filter would only scan."""
    if chart is None:
        return None
    lines = tuple(replace(line, points=Markup(line.points)) for line in chart.lines)
    return replace(chart, lines=lines)


def history_of(repo: Repository, name: str, points: list[Point]) -> History:
    label = {"15m": "24 hours", "1h": "7 days", "1d": "30 days"}[name]
    chart = drawn(
        line_chart(
            f"{repo.full_name}: stars per {name} bucket over the last {label}",
            [("stars", "line-ours", [(p.start, p.stars) for p in points])],
        )
    )
    return History(name, label, points, chart)


# The style of the drawn estimate across the gap a capped stargazer list leaves.
ESTIMATE = "line-estimate"
ESTIMATE_LABEL = "estimate: GitHub lists only the first 40,000 stars"


def star_chart(
    connection: Connection,
    repo: Repository,
    cursor: StargazerCursor | None,
    ours: list[tuple[datetime, int]],
    log: bool = False,
) -> Chart | None:
    """The stargazer history where it is exact, then our own snapshots from there on; a
    capped list (over 40,000 stars) leaves a gap before our first snapshot, drawn as a
    marked estimate so the two parts do not look like unrelated marks."""
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
    capped = cursor is not None and not cursor.complete
    gap = [stargazed[-1], ours[0]] if capped and stargazed and ours else []
    return drawn(
        line_chart(
            f"Star history of {repo.full_name}" + (" (log scale)" if log else ""),
            [
                ("from GitHub's stargazer list", "line-stargazers", stargazed),
                (ESTIMATE_LABEL, ESTIMATE, gap),
                ("from our snapshots", "line-ours", ours),
            ],
            log=log,
        )
    )
