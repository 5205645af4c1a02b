"""The rollup's precomputed repository page data equals what the page would read live."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from db.models import LatestRanking, RepoChart, Repository, RollupState
from githubsim import Simulator
from pipelines.aggregate import refresh_latest_ranking
from pipelines.page_data import ChartData, chart_data
from taskpipes import registry
from taskpipes.runtime.runner import run_tick
from taskpipes.store.database import begin
from tests.handmade import AS_OF, HISTORY, at, store

T = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)


def fill(simulator: Simulator) -> None:
    """An hour of github_top ticks and the rollup at its end."""
    for minutes in range(60, -1, -10):
        tick = T - timedelta(minutes=minutes)
        simulator.set_clock(tick)
        assert run_tick(registry.get("github_top"), tick, 60).status == "succeeded"
    assert run_tick(registry.get("rollup"), T, 60).status == "succeeded"


def test_stored_page_data_round_trips_and_equals_the_live_read(
    app_env, database_url, simulator: Simulator
) -> None:
    # Given github_top ticks and a rollup, as production runs them
    app_env(database_url)
    fill(simulator)

    with begin() as session:
        as_of = session.scalars(select(RollupState.as_of)).one()
        ranked = session.scalars(select(LatestRanking.repo_id)).all()
        stored = dict(session.execute(select(RepoChart.repo_id, RepoChart.data)).all())
        repo = session.get_one(Repository, ranked[0])
        live = chart_data(session.connection(), repo, as_of)

    # Then every ranked repository has its page data, as of the rollup, equal to a live read
    assert set(stored) == set(ranked)
    precomputed = ChartData.from_json(stored[repo.id])
    assert precomputed == live
    assert precomputed.as_of == as_of
    assert len(precomputed.histories["15m"]) == 4  # the buckets of 11:00 to 11:45
    assert len(precomputed.histories["1h"]) == 1
    assert precomputed.ranks


def iso(text: str) -> str:
    return at(text).isoformat()


# Page data as of 13:00 for A (1) and C (3) of the hand-made history, worked out by hand:
# 15-minute buckets close on their last sample, gains count from the previous bucket
# present; C is missing from 12:20 (no 12:15 bucket, no rank) and new on 2026-08-21.
EXPECTED_PAGE_DATA = {
    1: {
        "15m": [
            ["11:45", 90, 80],
            ["12:00", 110, 20],
            ["12:15", 130, 20],
            ["12:30", 135, 5],
            ["12:45", 140, 5],
        ],  # fmt: skip
        "1h": [["11:00", 90, 80], ["12:00", 140, 50]],
        "1d": [["2026-08-14 00:00", 10, None], ["2026-08-21 00:00", 140, 130]],
        # Ranks sampled evenly over the week it was seen: it ranks 2 of 2 on the 14th, 4 of
        # 5 at 12:50 on the 21st.
        "ranks": [["2026-08-14 12:00", 2], ["12:50", 4]],
        "ours": [["2026-08-14 12:00", 10], ["12:45", 140]],
    },
    3: {
        "15m": [["11:45", 45, None], ["12:00", 55, 10], ["12:30", 70, 15], ["12:45", 71, 1]],
        "1h": [["11:00", 45, None], ["12:00", 71, 26]],
        "1d": [["2026-08-21 00:00", 71, None]],
        "ranks": [["11:50", 5], ["12:00", 3], ["12:10", 3], ["12:40", 3], ["12:50", 5]],
        "ours": [["11:45", 45], ["12:00", 55], ["12:30", 70], ["12:45", 71]],
    },
}


def moment(text: str) -> str:
    """A literal's time: a bare HH:MM is on 2026-08-21."""
    return iso(text if "-" in text else f"2026-08-21 {text}")


def as_json(expected: dict[str, list[list[object]]]) -> dict[str, object]:
    def timed(rows: list[list[object]]) -> list[list[object]]:
        return [[moment(str(row[0])), *row[1:]] for row in rows]

    return {
        "as_of": AS_OF.isoformat(),
        "histories": {name: timed(expected[name]) for name in ("15m", "1h", "1d")},
        "ranks": timed(expected["ranks"]),
        "ours": timed(expected["ours"]),
    }


def test_page_data_of_a_hand_made_history_is_what_a_person_works_out(app_env, database_url) -> None:
    # Given the hand-made history, ranked as of its last tick, and rolled up as of 13:00
    app_env(database_url)
    with begin() as session:
        for tick, stars in HISTORY.items():
            store(session, at(tick), stars, at(tick) + timedelta(seconds=30))
        refresh_latest_ranking(session, max(map(at, HISTORY)))
    assert run_tick(registry.get("rollup"), AS_OF, 60).status == "succeeded"

    with begin() as session:
        stored = dict(session.execute(select(RepoChart.repo_id, RepoChart.data)).all())

    assert set(stored) == {1, 2, 3, 4, 5}
    for repo_id, expected in EXPECTED_PAGE_DATA.items():
        assert stored[repo_id] == as_json(expected), repo_id
