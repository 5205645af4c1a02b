"""What the web pages read: bounded indexed lookups, never a scan of a history.

Each read costs the same whatever the length of the history: the top 100 is three small
tables joined (latest_ranking, trending, sparklines); a repository's charts sample at most
a fixed number of moments, each answered by one index probe ("the latest row before t" on
the (repo_id, bucket_start) key, on the snapshots' (tick, ...) key, or a star_days key).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from markupsafe import Markup
from sqlalchemy import Connection, and_, func, select
from sqlalchemy.orm import aliased

from db.models import (
    STATE_ID,
    LanguageStat,
    LatestRanking,
    RepoChart,
    RollupState,
    Sparkline,
    StarDay,
    StargazerCursor,
    TrendingEntry,
)
from pipelines.charts import evenly


@dataclass(frozen=True)
class Version:
    """What the pages' data is a function of: the served ranking's tick, the rollup state
    and the languages table's as_of."""

    ranking_tick: datetime | None
    rollup_as_of: datetime | None
    watermark: datetime | None
    languages_as_of: datetime | None


@dataclass(frozen=True)
class TopRow:
    rank: int
    repo_id: int
    full_name: str
    stars: int
    language: str | None
    gained_24h: int | None
    gained_7d: int | None
    sparkline: str | None
    sparkline_points: int
    sparkline_first: int | None
    sparkline_last: int | None


# One round trip for the four values a page's ETag is made of (three would be one each).
VERSION_QUERY = select(
    select(LatestRanking.tick).where(LatestRanking.rank == 1).scalar_subquery(),
    select(RollupState.as_of).where(RollupState.id == STATE_ID).scalar_subquery(),
    select(RollupState.stored_watermark).where(RollupState.id == STATE_ID).scalar_subquery(),
    select(LanguageStat.as_of).where(LanguageStat.rank == 1).scalar_subquery(),
)


def read_version(connection: Connection) -> Version:
    return Version(*connection.execute(VERSION_QUERY).one())


def _gain(span: str) -> type[TrendingEntry]:
    return aliased(TrendingEntry, name=f"gain_{span.lower()}")


_DAY, _WEEK = _gain("24h"), _gain("7d")
# The top page lists the first 100 whatever TASKPIPES_TOP_N ranks: a page of 1,000 rows is
# ~2 MB and 30 times the render; /api/top serves the whole ranking.
PAGE_ROWS = 100
# Built once: composing the statement costs about as much as running it.
TOP_QUERY = (
    select(
        LatestRanking.rank,
        LatestRanking.repo_id,
        LatestRanking.full_name,
        LatestRanking.stars,
        LatestRanking.language,
        _DAY.stars_gained,
        _WEEK.stars_gained,
        Sparkline.points,
        func.coalesce(Sparkline.point_count, 0),
        Sparkline.first_stars,
        Sparkline.last_stars,
    )
    .outerjoin(_DAY, and_(_DAY.span == "24h", _DAY.repo_id == LatestRanking.repo_id))
    .outerjoin(_WEEK, and_(_WEEK.span == "7d", _WEEK.repo_id == LatestRanking.repo_id))
    .outerjoin(Sparkline, Sparkline.repo_id == LatestRanking.repo_id)
    .order_by(LatestRanking.rank)
    .limit(PAGE_ROWS)
)


def top_rows(connection: Connection) -> list[TopRow]:
    """The ranking's rows; a sparkline's points are Markup: numbers the rollup drew
    (pipelines.charts.points_attr), 1.3 kB a row that escaping would only scan."""
    return [
        TopRow(*row[:7], None if row[7] is None else Markup(row[7]), *row[8:])
        for row in connection.execute(TOP_QUERY)
    ]


def ranking_of(connection: Connection, repo_id: int) -> tuple[int, int] | None:
    """(rank, stars) of the repository in the served ranking, if it is in it."""
    row = connection.execute(
        select(LatestRanking.rank, LatestRanking.stars).where(LatestRanking.repo_id == repo_id)
    ).first()
    return None if row is None else (row.rank, row.stars)


def stargazer_cursor(connection: Connection, repo_id: int) -> StargazerCursor | None:
    row = connection.execute(
        select(StargazerCursor.__table__).where(StargazerCursor.repo_id == repo_id)
    ).first()
    return None if row is None else StargazerCursor(**row._mapping)


def star_days(
    connection: Connection, repo_id: int, until: datetime, most: int
) -> list[tuple[datetime, int]]:
    """At most `most` of the repository's daily star counts before `until`, evenly spread
    from its first day: two key lookups for the ends, then one per sampled day."""
    own = StarDay.repo_id == repo_id
    first = connection.scalar(select(StarDay.day).where(own).order_by(StarDay.day).limit(1))
    last = connection.scalar(
        select(StarDay.day).where(own, StarDay.day < until).order_by(StarDay.day.desc()).limit(1)
    )
    if first is None or last is None:
        return []
    days = [first + timedelta(days=d) for d in evenly(0, (last - first).days, most)]
    rows = connection.execute(
        select(StarDay.day, StarDay.stars).where(own, StarDay.day.in_(days)).order_by(StarDay.day)
    )
    return [(row.day, row.stars) for row in rows]


def repo_chart(connection: Connection, repo_id: int) -> dict[str, Any] | None:
    """The rollup's precomputed page data of a ranked repository (one key lookup)."""
    return connection.scalar(select(RepoChart.data).where(RepoChart.repo_id == repo_id))
