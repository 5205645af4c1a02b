"""The daily maintenance job prunes by retention and reports what it removed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from db.models import RawResponse
from taskpipes import registry
from taskpipes.runtime.runner import run_tick
from taskpipes.store.database import begin
from taskpipes.store.tables import Run, StageRun


def add_run(session, age: timedelta, status: str = "succeeded", raw: bool = True) -> int:  # type: ignore[no-untyped-def]
    """A github_top run `age` old, with its fetch's output and its raw answer fetched at
    the tick."""
    tick = datetime.now(UTC) - age
    run = Run(pipeline="github_top", tick=tick, status=status, attempts=1)
    session.add(run)
    session.flush()
    session.add(StageRun(run_id=run.id, stage="fetch", status=status, output={"payload": {}}))
    if raw:
        session.add(
            RawResponse(run_id=run.id, tick=tick, fetched_at=tick, http_status=200, payload={})
        )
    return run.id


def test_maintenance_prunes_by_retention_and_reports(app_env, database_url) -> None:
    # Given runs and raw answers of various ages, with a 7-day raw retention (not the
    # 30-day default, so a retention that ignores the setting is seen)
    app_env(database_url, TASKPIPES_RAW_RETENTION_DAYS="7")
    with begin() as session:
        keep_recent = add_run(session, timedelta(days=1))
        keep_six_days = add_run(session, timedelta(days=6))
        raw_past_7 = add_run(session, timedelta(days=8))
        raw_past_30 = add_run(session, timedelta(days=40))
        add_run(session, timedelta(days=100))
        add_run(session, timedelta(days=120), status="failed", raw=False)

    # When maintenance runs for today's 03:00 tick
    outcome = run_tick(registry.get("maintenance"), datetime.now(UTC), 60)

    # Then old raw answers and runs are gone, recent ones stay, and the run says so
    assert outcome.status == "succeeded", outcome.error
    with begin() as session:
        run_ids = set(session.scalars(select(Run.id).where(Run.pipeline == "github_top")))
        raw_runs = set(session.scalars(select(RawResponse.run_id)))
        details = session.get_one(Run, outcome.run_id).details
        output_runs = set(session.scalars(select(StageRun.run_id).where(StageRun.stage == "fetch")))
    assert run_ids == {keep_recent, keep_six_days, raw_past_7, raw_past_30}
    assert raw_runs == {keep_recent, keep_six_days}
    # Stage outputs are kept as long as the run history
    assert output_runs == run_ids
    assert details["removed"] == {"raw_responses": 3, "runs": 2, "message_deliveries": 0}
    expected_analyzed = (
        ["snapshots", "raw_responses", "runs", "stage_runs"] if "postgresql" in database_url else []
    )
    assert details["analyzed"] == expected_analyzed
    assert outcome.tick.hour == 3 and outcome.tick.minute == 0
