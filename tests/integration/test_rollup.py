"""The rollup: pure core with literals, a hand-made history in the database, late data.
(The property test against an independent oracle is in test_rollup_oracle.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from db import schema as migrate
from db.models import RollupBucket, RollupState, TrendingEntry
from pipelines.buckets import (
    Bucket,
    StarCount,
    bucket_start,
    coarsen,
    full_rollup,
    recompute_segment,
    split_stretch,
    stretches,
)
from pipelines.rollup import pages_stage, roll_up, roll_up_tick
from pipelines.trending import WINDOWS, Trend, full_trending, rank_trending
from taskpipes.declare.pipeline import Context
from taskpipes.store.database import make_engine
from tests.handmade import AS_OF, EXPECTED_TRENDING, HISTORY, at, expected_buckets, store


def stored_buckets(session: Session) -> list[tuple]:
    rows = session.scalars(
        select(RollupBucket).order_by(RollupBucket.repo_id, RollupBucket.bucket_start)
    )
    return [(r.repo_id, r.bucket_start, r.stars, r.stars_gained) for r in rows]


def stored_trending(session: Session) -> dict[str, list[tuple]]:
    rows = session.scalars(select(TrendingEntry).order_by(TrendingEntry.span, TrendingEntry.rank))
    result: dict[str, list[tuple]] = {span: [] for span in WINDOWS}
    for r in rows:
        result[r.span].append((r.rank, r.repo_id, r.stars, r.stars_gained))
    return result


# --- the pure core, with literals -------------------------------------------------------


def test_bucket_start_floors_to_quarter_hours() -> None:
    assert bucket_start(at("2026-08-21 12:14:59")) == at("2026-08-21 12:00")
    assert bucket_start(at("2026-08-21 12:15")) == at("2026-08-21 12:15")
    assert bucket_start(at("2026-08-21 23:59")) == at("2026-08-21 23:45")


def test_full_rollup_keeps_each_buckets_last_snapshot_and_gains_against_the_one_before() -> None:
    counts = [
        StarCount(7, at("2026-08-21 12:10"), 12),
        StarCount(7, at("2026-08-21 12:00"), 10),
        StarCount(7, at("2026-08-21 13:05"), 20),
    ]
    assert full_rollup(counts) == [
        Bucket(7, at("2026-08-21 12:00"), at("2026-08-21 12:10"), 12, None),
        Bucket(7, at("2026-08-21 13:00"), at("2026-08-21 13:05"), 20, 8),
    ]


def test_recompute_segment_redoes_the_stretch_and_the_next_bucket() -> None:
    # A late snapshot lands in the empty 12:15 bucket between 12:00 (10) and 12:30 (20).
    late = StarCount(7, at("2026-08-21 12:20"), 15)
    after = Bucket(7, at("2026-08-21 12:30"), at("2026-08-21 12:30"), 20, 10)
    assert recompute_segment(10, [], {at("2026-08-21 12:15"): late}, after) == [
        Bucket(7, at("2026-08-21 12:15"), at("2026-08-21 12:20"), 15, 5),
        Bucket(7, at("2026-08-21 12:30"), at("2026-08-21 12:30"), 20, 5),
    ]


def test_stretches_group_consecutive_buckets_and_split_long_ones() -> None:
    starts = [
        at("2026-08-21 12:30"),
        at("2026-08-21 12:00"),
        at("2026-08-21 12:15"),
        at("2026-08-21 14:00"),
    ]
    assert stretches(starts) == [
        (at("2026-08-21 12:00"), at("2026-08-21 12:30")),
        (at("2026-08-21 14:00"), at("2026-08-21 14:00")),
    ]
    assert split_stretch(at("2026-08-21 12:00"), at("2026-08-21 12:30"), 2) == [
        (at("2026-08-21 12:00"), at("2026-08-21 12:15")),
        (at("2026-08-21 12:30"), at("2026-08-21 12:30")),
    ]


def test_rank_trending_orders_by_gain_then_stars_then_id_and_drops_the_unknown() -> None:
    current = {1: 100, 2: 300, 3: 300, 4: 50}
    earlier = {1: 90, 2: 290, 3: 290}
    assert rank_trending(current, earlier) == [
        Trend(1, 2, 300, 10),
        Trend(2, 3, 300, 10),
        Trend(3, 1, 100, 10),
    ]


def test_coarsen_takes_the_last_stars_and_the_gain_since_before_the_bucket() -> None:
    fine = [
        Bucket(7, at("2026-08-21 11:45"), at("2026-08-21 11:50"), 90, None),
        Bucket(7, at("2026-08-21 12:00"), at("2026-08-21 12:10"), 110, 20),
        Bucket(7, at("2026-08-21 12:45"), at("2026-08-21 12:50"), 140, 30),
    ]
    assert coarsen(fine, timedelta(hours=1)) == [
        Bucket(7, at("2026-08-21 11:00"), at("2026-08-21 11:50"), 90, None),
        Bucket(7, at("2026-08-21 12:00"), at("2026-08-21 12:50"), 140, 50),
    ]


def test_the_reference_functions_give_the_literal_expectations() -> None:
    counts = [StarCount(r, at(t), s) for t, stars in HISTORY.items() for r, s in stars.items()]
    assert [
        (b.repo_id, b.start, b.stars, b.stars_gained) for b in full_rollup(counts)
    ] == expected_buckets()
    for span, window in WINDOWS.items():
        trends = full_trending(counts, AS_OF, window)
        assert [(t.rank, t.repo_id, t.stars, t.stars_gained) for t in trends] == EXPECTED_TRENDING[
            span
        ]


# --- the hand-made history in a database -------------------------------------------------


@contextmanager
def database(url: str) -> Iterator[Engine]:
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def test_rollups_every_quarter_hour_give_the_literal_expectations(database_url: str) -> None:
    with database(database_url) as engine:
        # When each tick is stored as it happens and a rollup runs every 15 minutes
        for tick, stars in HISTORY.items():
            with Session(engine) as session, session.begin():
                store(session, at(tick), stars, at(tick) + timedelta(seconds=30))
            rollup_at = bucket_start(at(tick)) + timedelta(minutes=15)
            with Session(engine) as session, session.begin():
                roll_up_tick(session, rollup_at)
        # Then the buckets and the trending tables are the expected ones
        with Session(engine) as session:
            assert stored_buckets(session) == expected_buckets()
            assert stored_trending(session) == EXPECTED_TRENDING
            assert session.get_one(RollupState, 1).as_of == AS_OF


# The tick of the hand-made history that arrives an hour late in the tests below.
LATE_TICK = "2026-08-21 12:10"


def roll_up_all_but_the_late_tick(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        for tick, stars in HISTORY.items():
            if tick != LATE_TICK:
                store(session, at(tick), stars, at("2026-08-21 12:55"))
        roll_up_tick(session, AS_OF)


def store_the_late_tick(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        store(session, at(LATE_TICK), HISTORY[LATE_TICK], at("2026-08-21 14:00"))


def test_a_late_snapshot_is_rolled_up_by_the_next_run_and_reruns_change_nothing(
    sqlite_url: str,
) -> None:
    with database(sqlite_url) as engine:
        # Given everything but 12:10 stored and rolled up as of 13:00
        roll_up_all_but_the_late_tick(engine)
        with Session(engine) as session:
            assert stored_buckets(session) != expected_buckets()
        # When 12:10 arrives an hour late and 13:00 is rolled up again
        store_the_late_tick(engine)
        with Session(engine) as session, session.begin():
            roll_up_tick(session, AS_OF)
        # Then its bucket and the next one are repaired
        with Session(engine) as session:
            assert stored_buckets(session) == expected_buckets()
            assert stored_trending(session) == EXPECTED_TRENDING
            before = (stored_buckets(session), stored_trending(session))
        # And rolling up the same tick, or an older one, changes nothing
        for tick in (AS_OF, at("2026-08-21 12:15")):
            with Session(engine) as session, session.begin():
                assert roll_up(session) == 0
                roll_up_tick(session, tick)
            with Session(engine) as session:
                assert (stored_buckets(session), stored_trending(session)) == before
                assert session.get_one(RollupState, 1).as_of == AS_OF


def test_a_first_rollup_over_a_long_history_works_in_bounded_stretches(
    sqlite_url: str, monkeypatch
) -> None:
    import pipelines.rollup

    monkeypatch.setattr(pipelines.rollup, "MAX_STRETCH_BUCKETS", 2)
    with database(sqlite_url) as engine:
        with Session(engine) as session, session.begin():
            for tick, stars in HISTORY.items():
                store(session, at(tick), stars, at("2026-08-21 12:55"))
            roll_up_tick(session, AS_OF)
        with Session(engine) as session:
            assert stored_buckets(session) == expected_buckets()


def generations(engine: Engine) -> tuple[int, int | None]:
    """(the rollup's generation, the one the pages' data was built at)."""
    with Session(engine) as session:
        state = session.get_one(RollupState, 1)
        return state.generation, state.pages_generation


def build_pages(engine: Engine, tick: datetime) -> None:
    with Session(engine) as session, session.begin():
        pages_stage(Context("rollup", "pages", 0, tick, tick, session))


def test_the_pages_data_is_rebuilt_only_after_a_rollup_changed_something(
    sqlite_url: str,
) -> None:
    with database(sqlite_url) as engine:
        # Given everything but 12:10 rolled up as of 13:00, and the pages' data built
        roll_up_all_but_the_late_tick(engine)
        build_pages(engine, AS_OF)
        built, at_build = generations(engine)
        assert at_build == built
        # When older ticks, then the same one, are rolled up again with nothing new
        for tick in (at("2026-08-21 12:15"), AS_OF):
            with Session(engine) as session, session.begin():
                roll_up_tick(session, tick)
            # Then nothing the pages read changed: their stage has nothing to rebuild
            assert generations(engine) == (built, built)
        # When 12:10 arrives late and is rolled up
        store_the_late_tick(engine)
        with Session(engine) as session, session.begin():
            roll_up_tick(session, AS_OF)
        # Then a new generation, which the pages' stage rebuilds
        changed, _ = generations(engine)
        assert changed > built
        build_pages(engine, AS_OF)
        assert generations(engine) == (changed, changed)
        # And a later tick moves as_of: a new generation again
        with Session(engine) as session, session.begin():
            roll_up_tick(session, AS_OF + timedelta(minutes=15))
        assert generations(engine)[0] > changed
