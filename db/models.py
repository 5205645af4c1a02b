"""The application's ORM models, on the kit's Base (one metadata for Alembic).

The kit's own tables (runs, stage_runs, message_deliveries) live in taskpipes.store.tables;
they are re-exported here because the app's tables refer to runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from taskpipes.store.tables import Base


class Repository(Base):
    """A GitHub repository, keyed by its numeric id so renames keep their history."""

    __tablename__ = "repositories"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    full_name: Mapped[str] = mapped_column(String(200), index=True)
    description: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(100))
    license: Mapped[str | None] = mapped_column(String(100))
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]


class Snapshot(Base):
    """One repository's counts at one tick: the history we keep forever."""

    __tablename__ = "snapshots"

    # The key leads with the tick: ticks arrive in order, so inserts append to the index,
    # and "the snapshot at tick T" is a key prefix. No foreign key to repositories: store
    # writes the repository rows first in the same transaction, and the per-row check
    # would cost more than the whole insert (bench/store.py).
    tick: Mapped[datetime] = mapped_column(primary_key=True)
    repo_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    rank: Mapped[int] = mapped_column(Integer)
    stars: Mapped[int] = mapped_column(Integer)
    forks: Mapped[int] = mapped_column(Integer)
    open_issues: Mapped[int] = mapped_column(Integer)
    stored_at: Mapped[datetime]


class RawResponse(Base):
    """The API answer exactly as fetched, so normalize can be re-run without the network."""

    __tablename__ = "raw_responses"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    tick: Mapped[datetime] = mapped_column(index=True)
    fetched_at: Mapped[datetime] = mapped_column(index=True)
    http_status: Mapped[int] = mapped_column(Integer)
    etag: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[Any] = mapped_column(JSON)


class LatestRanking(Base):
    """The ranking the read API serves: replaced whole by the aggregate stage."""

    __tablename__ = "latest_ranking"

    rank: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    repo_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    stars: Mapped[int] = mapped_column(Integer)
    forks: Mapped[int] = mapped_column(Integer)
    language: Mapped[str | None] = mapped_column(String(100))
    stars_gained: Mapped[int | None] = mapped_column(Integer)
    tick: Mapped[datetime]


# The rollup finds snapshots stored since its last run (late ones included) by stored_at.
Index("ix_snapshots_stored_at", Snapshot.__table__.c.stored_at)


class RollupBucket(Base):
    """One repository's 15-minute bucket: the stars at its last snapshot and the gain since
    the repository's last snapshot before it (null when there is none)."""

    __tablename__ = "rollup_buckets"

    repo_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    bucket_start: Mapped[datetime] = mapped_column(primary_key=True)
    last_tick: Mapped[datetime]
    stars: Mapped[int] = mapped_column(Integer)
    stars_gained: Mapped[int | None] = mapped_column(Integer)


class TrendingEntry(Base):
    """The trending ranking per window as of the newest rollup; replaced whole each rollup."""

    __tablename__ = "trending"

    span: Mapped[str] = mapped_column(String(8), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    repo_id: Mapped[int] = mapped_column(BigInteger)
    stars: Mapped[int] = mapped_column(Integer)
    stars_gained: Mapped[int] = mapped_column(Integer)
    as_of: Mapped[datetime]


# The id of rollup_state's only row.
STATE_ID = 1


class RollupState(Base):
    """The rollup's single row: the newest tick rolled up, how far stored_at was read, and
    whether the pages' data is already up to date with both."""

    __tablename__ = "rollup_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    as_of: Mapped[datetime | None]
    stored_watermark: Mapped[datetime | None]
    # Counts the rollups that changed what the pages' data is computed from (bucket rows
    # written, newer snapshots seen, as_of moved).
    generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The generation the pages' data was last computed at: the same, a rebuild is a no-op.
    pages_generation: Mapped[int | None]


class StarEvent(Base):
    """One star given to a repository by one user, from GitHub's stargazer list."""

    __tablename__ = "star_events"

    repo_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    starred_at: Mapped[datetime]
    # When the row was written: how evenly the inserts were spread is read from it.
    inserted_at: Mapped[datetime]


class StarDay(Base):
    """A repository's cumulative star count at the end of each UTC day: the read API's table."""

    __tablename__ = "star_days"

    repo_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    day: Mapped[datetime] = mapped_column(primary_key=True)  # 00:00 UTC of the day
    stars: Mapped[int] = mapped_column(Integer)


class StargazerCursor(Base):
    """How far a repository's stargazer list is stored, and what its history may claim."""

    __tablename__ = "stargazer_cursors"

    repo_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    full_name: Mapped[str] = mapped_column(String(200), index=True)
    # The first page not yet stored full: a re-run starts there (new stars land last).
    next_page: Mapped[int] = mapped_column(Integer)
    # False when GitHub's 400-page cap cut the list: the newest stars are missing.
    complete: Mapped[bool]
    # The stored history is exact up to this moment.
    as_of: Mapped[datetime]
    updated_at: Mapped[datetime]


class StargazerRun(Base):
    """One stargazers run: its options, its pacing and the fan-in counters of its pages."""

    __tablename__ = "stargazer_runs"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    repo: Mapped[str | None] = mapped_column(String(200))
    rate: Mapped[int] = mapped_column(Integer)
    api_rate: Mapped[int] = mapped_column(Integer)
    gap_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    planned_pages: Mapped[int] = mapped_column(Integer, default=0)
    sent_pages: Mapped[int] = mapped_column(Integer, default=0)
    done_pages: Mapped[int] = mapped_column(Integer, default=0)
    rows_stored: Mapped[int] = mapped_column(Integer, default=0)
    # The number of the next wave: a duplicate wave message carries an older one.
    wave: Mapped[int] = mapped_column(Integer, default=0)
    # The next wave of page messages may not start before this.
    next_wave_at: Mapped[datetime | None]


class StargazerPacing(Base):
    """When the next wave of *any* stargazers run may start.

    GitHub's core budget and the database's insert budget belong to the deployment, not to
    one run: runs going at once take turns wave by wave, so together they stay within the
    budgets one run is paced for.
    """

    __tablename__ = "stargazer_pacing"

    # One row, under a name, so that it can be created by an idempotent insert.
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    next_wave_at: Mapped[datetime]


class StargazerPlan(Base):
    """One repository of one run: the star count its pages were planned from."""

    __tablename__ = "stargazer_plans"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    repo_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    full_name: Mapped[str] = mapped_column(String(200))
    stars: Mapped[int] = mapped_column(Integer)
    counted_at: Mapped[datetime]


class StargazerPage(Base):
    """One planned page of one run; `seq` is its send order, `stored_at` is set once."""

    __tablename__ = "stargazer_pages"
    __table_args__ = (
        UniqueConstraint("run_id", "seq"),
        Index("ix_stargazer_pages_repo_id_page", "repo_id", "page"),
    )

    run_id: Mapped[int] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    repo_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    page: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    rows: Mapped[int | None] = mapped_column(Integer)
    stored_at: Mapped[datetime | None]


class Sparkline(Base):
    """A ranked repository's last 7 days of 1h stars drawn as SVG polyline points: what
    the web page's top 100 would otherwise read from 67,200 bucket rows per request.
    Replaced whole by each rollup, after trending."""

    __tablename__ = "sparklines"

    repo_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    as_of: Mapped[datetime]
    # The 1h points of the last 7 days (the page data's 1h history), pipelines.charts.sparkline_points' format.
    points: Mapped[str] = mapped_column(Text)
    point_count: Mapped[int] = mapped_column(Integer)
    first_stars: Mapped[int] = mapped_column(Integer)
    last_stars: Mapped[int] = mapped_column(Integer)


class RepoChart(Base):
    """A ranked repository's page data (history points, rank and star samples) as of the
    newest rollup: what its web page would otherwise read with ~300 index probes per
    request. Written by the rollup with the very function the page uses live
    (pipelines.page_data.chart_data) for repositories outside the ranking."""

    __tablename__ = "repo_charts"

    repo_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    as_of: Mapped[datetime]
    data: Mapped[Any] = mapped_column(JSON)


class LanguageStat(Base):
    """One language over the tracked repositories (the top 100 of the newest snapshot at
    the language_stats tick): replaced whole by each run, what /api/languages serves."""

    __tablename__ = "language_stats"

    rank: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    # Null for the repositories GitHub detects no language in (lists, docs).
    language: Mapped[str | None] = mapped_column(String(100))
    repositories: Mapped[int] = mapped_column(Integer)
    stars: Mapped[int] = mapped_column(BigInteger)
    # Null when none of the language's repositories has a snapshot that far back.
    stars_gained_24h: Mapped[int | None] = mapped_column(BigInteger)
    stars_gained_7d: Mapped[int | None] = mapped_column(BigInteger)
    as_of: Mapped[datetime]
