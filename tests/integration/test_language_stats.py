"""language_stats: the pure totals with literals, the refresh on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from db.models import LanguageStat
from pipelines.language_stats import (
    LanguageTotal,
    TrackedRepo,
    gain,
    language_totals,
    refresh_language_stats,
)
from pipelines.records import RepoSnapshot
from pipelines.rollup import roll_up_tick
from pipelines.store_snapshot import store_snapshot
from taskpipes.store.database import begin
from tests.handmade import at

# --- the pure core ---------------------------------------------------------------------


def test_gain_sums_the_repositories_that_have_an_earlier_count() -> None:
    repos = [TrackedRepo(1, "Go", 150), TrackedRepo(2, "Go", 70), TrackedRepo(3, "Go", 9)]

    assert gain(repos, {1: 100, 2: 75}) == 50 - 5
    assert gain(repos, {}) is None
    assert gain([], {1: 100}) is None


def test_totals_per_language_ranked_by_stars_with_no_language_as_its_own_row() -> None:
    repos = [
        TrackedRepo(1, "Python", 500),
        TrackedRepo(2, "Rust", 300),
        TrackedRepo(3, None, 400),
        TrackedRepo(4, "Python", 100),
        TrackedRepo(5, "Rust", 200),
        TrackedRepo(6, None, 50),
        TrackedRepo(7, "Go", 450),
    ]
    day_ago = {1: 480, 2: 290, 3: 400, 4: 90, 7: 440}
    week_ago = {1: 400, 3: 380}

    totals = language_totals(repos, day_ago, week_ago)

    assert totals == [
        LanguageTotal(1, "Python", 2, 600, 20 + 10, 100),
        LanguageTotal(2, "Rust", 2, 500, 10, None),
        LanguageTotal(3, None, 2, 450, 0, 20),
        LanguageTotal(4, "Go", 1, 450, 10, None),
    ]


def test_ties_go_to_more_repositories_then_to_the_name_and_no_language_last() -> None:
    repos = [
        TrackedRepo(1, "Zig", 100),
        TrackedRepo(2, None, 100),
        TrackedRepo(3, "C", 100),
        TrackedRepo(4, "Java", 60),
        TrackedRepo(5, "Java", 40),
    ]

    ranked = [(t.rank, t.language) for t in language_totals(repos, {}, {})]

    assert ranked == [(1, "Java"), (2, "C"), (3, "Zig"), (4, None)]


def test_no_repositories_no_rows() -> None:
    assert language_totals([], {1: 5}, {1: 5}) == []


# --- the refresh on a real database ------------------------------------------------------

# (stars, language) per repository and tick: Go's 3 is new at 12:00; 4 has no language.
LANGUAGES = {1: "Python", 2: "Go", 3: "Go", 4: None}
HISTORY = {
    "2026-08-14 11:50": {1: 100, 2: 500, 4: 40},
    "2026-08-20 12:00": {1: 180, 2: 590, 4: 50},
    "2026-08-21 11:50": {1: 195, 2: 598, 4: 51},
    "2026-08-21 12:00": {1: 200, 2: 600, 3: 300, 4: 55},
}
TICK = at("2026-08-21 12:00")


def snapshot(tick: str, stars: dict[int, int]) -> list[RepoSnapshot]:
    ordered = sorted(stars.items(), key=lambda item: -item[1])
    return [
        RepoSnapshot(repo, f"o/r{repo}", rank, count, 1, 1, LANGUAGES[repo], None, None)
        for rank, (repo, count) in enumerate(ordered, 1)
    ]


def stored_history(app_env, database_url: str) -> None:  # type: ignore[no-untyped-def]
    app_env(database_url)
    with begin() as session:
        for tick, stars in HISTORY.items():
            store_snapshot(session, at(tick), snapshot(tick, stars), at(tick))
        roll_up_tick(session, TICK + timedelta(minutes=15))


def served() -> list[tuple]:
    with begin() as session:
        rows = session.scalars(select(LanguageStat).order_by(LanguageStat.rank))
        return [
            (r.rank, r.language, r.repositories, r.stars, r.stars_gained_24h, r.stars_gained_7d)
            for r in rows
        ]


def test_refresh_serves_the_totals_of_the_newest_snapshot(app_env, database_url: str) -> None:  # type: ignore[no-untyped-def]
    # Given four ticks of history over a week, rolled up
    stored_history(app_env, database_url)

    # When the languages are refreshed as of 12:00 (and again: nothing changes)
    for _ in range(2):
        with begin() as session:
            written = refresh_language_stats(session, TICK)

    # Then the 12:00 snapshot is summed per language; the gains reach back to the latest
    # snapshot at or before 24h (2026-08-20 12:00) and 7d (2026-08-14 11:50) earlier
    assert written == 3
    assert served() == [
        (1, "Go", 2, 900, 10, 100),
        (2, "Python", 1, 200, 20, 100),
        (3, None, 1, 55, 5, 15),
    ]
    with begin() as session:
        assert {r.as_of for r in session.scalars(select(LanguageStat))} == {TICK}


def test_refresh_never_goes_back_to_an_older_tick(app_env, database_url: str) -> None:  # type: ignore[no-untyped-def]
    stored_history(app_env, database_url)
    with begin() as session:
        refresh_language_stats(session, TICK)

    with begin() as session:
        written = refresh_language_stats(session, TICK - timedelta(minutes=10))

    assert written == 0
    assert served()[0] == (1, "Go", 2, 900, 10, 100)
