"""Incremental rollups, whatever the order and lateness of the snapshots' commits, equal an
oracle that shares no code with the rollup: a few lines of Python over the raw snapshots
the test itself stored. On SQLite and PostgreSQL, with the real migrations."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from db import schema as migrate
from pipelines.rollup import roll_up_tick
from taskpipes.store.database import make_engine
from taskpipes.store.tables import Base
from tests.handmade import AS_OF, EXPECTED_TRENDING, HISTORY, at, expected_buckets, store
from tests.integration.test_rollup import stored_buckets, stored_trending

Snapshots = dict[tuple[int, datetime], int]  # (repo id, tick) -> stars

BASE = datetime(2026, 8, 21, tzinfo=UTC)
# Snapshot times (minutes after BASE) in three clusters, so that 1h, 24h and 7d all see data.
MINUTES = st.one_of(
    st.integers(0, 180),
    st.integers(24 * 60, 24 * 60 + 120),
    st.integers(8 * 24 * 60, 8 * 24 * 60 + 120),
)
SNAPSHOTS = st.dictionaries(
    st.tuples(st.integers(1, 4), MINUTES), st.integers(0, 1000), min_size=1, max_size=40
)
ROLLUP_TICKS = st.integers(0, 8 * 96 + 12).map(lambda n: BASE + timedelta(minutes=15 * n))
# How late a commit may be: its stored_at is up to this much before the newest one already
# committed. The rollup promises to see commits up to 10 minutes late (its COMMIT_LAG).
LATENESS_S = st.integers(0, 10 * 60 - 1)


# The trending windows, written out again rather than imported.
WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}


def quarter(tick: datetime) -> datetime:
    return tick.replace(minute=tick.minute - tick.minute % 15, second=0, microsecond=0)


def oracle_buckets(snapshots: Snapshots) -> list[tuple]:
    """Per repository and quarter hour: the last snapshot's stars, gained since the
    repository's previous quarter hour with a snapshot."""
    last: dict[tuple[int, datetime], tuple[datetime, int]] = {}
    for (repo, tick), stars in snapshots.items():
        key = (repo, quarter(tick))
        if key not in last or tick > last[key][0]:
            last[key] = (tick, stars)
    rows, previous = [], {}
    for repo, start in sorted(last):
        stars = last[repo, start][1]
        rows.append((repo, start, stars, stars - previous[repo] if repo in previous else None))
        previous[repo] = stars
    return rows


def oracle_trending(snapshots: Snapshots, as_of: datetime, window: timedelta) -> list[tuple]:
    """The repositories of the newest tick before as_of, by stars gained since their latest
    snapshot before as_of - window, then stars, then id."""
    ticks = [tick for _, tick in snapshots if tick < as_of]
    if not ticks:
        return []

    def stars_before(repo: int, moment: datetime) -> int | None:
        earlier = [tick for r, tick in snapshots if r == repo and tick < moment]
        return snapshots[repo, max(earlier)] if earlier else None

    rows = []
    for (repo, tick), stars in snapshots.items():
        old = stars_before(repo, as_of - window)
        if tick == max(ticks) and old is not None:
            rows.append((repo, stars, stars - old))
    rows.sort(key=lambda row: (-row[2], -row[1], row[0]))
    return [(rank, repo, stars, gained) for rank, (repo, stars, gained) in enumerate(rows, 1)]


def test_the_oracle_gives_the_hand_made_literals() -> None:
    snapshots = {
        (repo, at(tick)): stars
        for tick, by_repo in HISTORY.items()
        for repo, stars in by_repo.items()
    }

    assert oracle_buckets(snapshots) == expected_buckets()
    assert {
        span: oracle_trending(snapshots, AS_OF, window) for span, window in WINDOWS.items()
    } == EXPECTED_TRENDING


@st.composite
def commits_and_rollups(draw: st.DrawFn) -> list[tuple[str, object]]:
    """Snapshots cut into batches committed in a random order, some late, with rollups in
    between. A store step is (batch, seconds since the last step, lateness in seconds)."""
    snapshots = list(draw(SNAPSHOTS).items())
    order = draw(st.permutations(range(len(snapshots))))
    steps: list[tuple[str, object]] = []
    i = 0
    while i < len(order):
        size = draw(st.integers(1, 6))
        batch = [snapshots[j] for j in order[i : i + size]]
        steps.append(("store", (batch, draw(st.integers(0, 2 * 60)), draw(LATENESS_S))))
        i += size
        if draw(st.booleans()):
            steps.append(("rollup", draw(ROLLUP_TICKS)))
    steps.append(("rollup", draw(ROLLUP_TICKS)))
    return steps


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def empty(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())


def store_batch(session: Session, batch: list, stored_at: datetime) -> None:
    by_tick: dict[datetime, dict[int, int]] = {}
    for (repo_id, minute), stars in batch:
        by_tick.setdefault(BASE + timedelta(minutes=minute), {})[repo_id] = stars
    for tick, stars in by_tick.items():
        store(session, tick, stars, stored_at)


# Each example empties the tables first, so the function-scoped database is safe to share.
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(steps=commits_and_rollups())
def test_incremental_rollups_equal_the_oracle(engine: Engine, steps: list) -> None:
    empty(engine)
    stored: Snapshots = {}
    clock = datetime(2026, 9, 1, tzinfo=UTC)
    newest_commit: datetime | None = None
    seen_by_rollup: datetime | None = None  # the newest commit a rollup has read
    as_of: datetime | None = None
    for kind, arg in steps:
        with Session(engine) as session, session.begin():
            if kind == "store":
                batch, gap_s, lateness_s = arg
                clock += timedelta(seconds=gap_s)
                stored_at = clock - timedelta(seconds=lateness_s)
                if seen_by_rollup is not None and stored_at < seen_by_rollup:
                    event("a commit older than one a rollup already read")
                newest_commit = max(stored_at, newest_commit or stored_at)
                store_batch(session, batch, stored_at)
                for (repo, minute), stars in batch:
                    stored[repo, BASE + timedelta(minutes=minute)] = stars
                continue
            roll_up_tick(session, arg)
            seen_by_rollup = newest_commit
            as_of = arg if as_of is None else max(as_of, arg)
        with Session(engine) as session:
            assert stored_buckets(session) == oracle_buckets(stored)
            assert stored_trending(session) == {
                span: oracle_trending(stored, as_of, window) for span, window in WINDOWS.items()
            }
