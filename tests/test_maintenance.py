"""The daily maintenance job prunes by retention and reports what it removed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from db.models import RawResponse
from taskpipes import registry
from taskpipes.database import begin
from taskpipes.models import Run
from taskpipes.runner import run_tick

NOW = datetime.now(UTC)


def add_run(
    session, tick: datetime, status: str = "succeeded", raw_age: timedelta | None = None
) -> int:  # type: ignore[no-untyped-def]
    run = Run(pipeline="github_top", tick=tick, status=status, attempts=1)
    session.add(run)
    session.flush()
    if raw_age is not None:
        session.add(
            RawResponse(
                run_id=run.id, tick=tick, fetched_at=NOW - raw_age, http_status=200, payload={}
            )
        )
    return run.id


def test_maintenance_prunes_by_retention_and_reports(app_env, database_url) -> None:
    # Given runs and raw answers of various ages, with a 30-day raw retention
    app_env(database_url, TASKPIPES_RAW_RETENTION_DAYS="30")
    with begin() as session:
        keep_recent = add_run(session, NOW - timedelta(days=1), raw_age=timedelta(days=1))
        raw_only = add_run(session, NOW - timedelta(days=40), raw_age=timedelta(days=40))
        add_run(session, NOW - timedelta(days=100), raw_age=timedelta(days=100))
        add_run(session, NOW - timedelta(days=120), status="failed")

    # When maintenance runs for today's 03:00 tick
    outcome = run_tick(registry.get("maintenance"), NOW, 60)

    # Then old raw answers and runs are gone, recent ones stay, and the run says so
    assert outcome.status == "succeeded", outcome.error
    with begin() as session:
        run_ids = set(session.scalars(select(Run.id).where(Run.pipeline == "github_top")))
        raw_runs = set(session.scalars(select(RawResponse.run_id)))
        details = session.get_one(Run, outcome.run_id).details
    assert run_ids == {keep_recent, raw_only}
    assert raw_runs == {keep_recent}
    assert details["removed"] == {"raw_responses": 2, "runs": 2, "message_deliveries": 0}
    expected_analyzed = (
        ["snapshots", "raw_responses", "runs", "stage_runs"] if "postgresql" in database_url else []
    )
    assert details["analyzed"] == expected_analyzed
    assert outcome.tick.hour == 3 and outcome.tick.minute == 0
