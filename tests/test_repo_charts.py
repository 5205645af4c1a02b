"""The rollup's precomputed repository page data equals what the page would read live."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from db.models import LatestRanking, RepoChart, Repository, RollupState
from pipelines.page_data import ChartData, chart_data
from taskpipes import registry
from taskpipes.database import begin
from taskpipes.githubsim import Simulator
from taskpipes.runner import run_tick

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
