"""`taskpipes backfill rollup --from --to` over a hand-made history (docs/how-to/operate.md,
"Run a tick by hand")."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import RollupState
from taskpipes.store.database import begin, make_engine
from taskpipes.store.tables import Run
from tests.clirun import run_cli
from tests.handmade import AS_OF, EXPECTED_TRENDING, HISTORY, at, expected_buckets, store
from tests.integration.test_rollup import stored_buckets, stored_trending
from tests.processes import service_env

RANGE = ["--from", "2026-08-21T12:00Z", "--to", "2026-08-21T13:00Z"]


def rollup_runs(database_url: str) -> list[tuple]:
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            rows = session.scalars(select(Run).where(Run.pipeline == "rollup").order_by(Run.tick))
            return [(r.id, r.tick, r.status, r.finished_at) for r in rows]
    finally:
        engine.dispose()


def test_backfill_rolls_up_every_tick_in_the_range_once(
    app_env, sqlite_url: str, tmp_path: Path
) -> None:
    # Given the hand-made history stored, and nothing rolled up
    app_env(sqlite_url)
    with begin() as session:
        for tick, stars in HISTORY.items():
            store(session, at(tick), stars, at(tick) + timedelta(seconds=30))
    env = service_env(tmp_path, DATABASE_URL=sqlite_url)

    # When the hour up to 13:00 is backfilled
    result = run_cli(["backfill", "rollup", *RANGE], env, tmp_path)

    # Then each quarter-hour tick ran once and the tables are as of 13:00
    assert result.returncode == 0, result.stderr
    assert "rollup: 5 ticks: 5 succeeded" in result.stdout
    runs = rollup_runs(sqlite_url)
    assert [(tick, status) for _, tick, status, _ in runs] == [
        (at(f"2026-08-21 {t}"), "succeeded") for t in ("12:00", "12:15", "12:30", "12:45", "13:00")
    ]
    with begin() as session:
        assert session.scalars(select(RollupState.as_of)).one() == AS_OF
        assert stored_buckets(session) == expected_buckets()
        assert stored_trending(session) == EXPECTED_TRENDING

    # And backfilling the same range again changes nothing
    again = run_cli(["backfill", "rollup", *RANGE], env, tmp_path)
    assert again.returncode == 0, again.stderr
    assert rollup_runs(sqlite_url) == runs


def test_backfill_refuses_what_it_cannot_compute(sqlite_url: str, tmp_path: Path) -> None:
    env = service_env(tmp_path, DATABASE_URL=sqlite_url)
    assert run_cli(["db", "upgrade"], env, tmp_path).returncode == 0

    present_only = run_cli(["backfill", "github_top", *RANGE], env, tmp_path)
    backwards = run_cli(["backfill", "rollup", "--from", RANGE[3], "--to", RANGE[1]], env, tmp_path)

    assert present_only.returncode == 2
    assert "cannot compute past ticks" in present_only.stderr and "rollup" in present_only.stderr
    assert (backwards.returncode, backwards.stderr.strip()) == (
        2,
        "taskpipes backfill: --to is before --from",
    )
    assert rollup_runs(sqlite_url) == []
