"""A retry holds the record of the stage its message goes to until the reopening commits
(taskpipes.store.retries.hold_stage): the message is published before the commit, and a
stage that ran against the run still seen as failed would leave it open for good (its
close finds the run finished). On PostgreSQL, where the take does not lock the run."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from taskpipes import Pipeline, Stage
from taskpipes.store.retries import Asked, reopen_run
from taskpipes.store.tables import Run, StageRun

pytestmark = pytest.mark.postgres

TWO = Pipeline("two", stages=(Stage("a", lambda ctx: 1), Stage("b", lambda ctx: 2)))


def test_the_stage_to_run_is_held_until_the_retry_commits(postgres_url: str) -> None:
    # Given a failed run whose stage a succeeded and b failed
    engine = create_engine(postgres_url)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    with Session(engine) as session, session.begin():
        run = Run(pipeline="two", tick=now, status="failed", attempts=1, error="b: boom")
        session.add(run)
        session.flush()
        for stage, status in (("a", "succeeded"), ("b", "failed")):
            session.add(StageRun(run_id=run.id, stage=stage, status=status, attempts=1))
        run_id = run.id

    # When a retry has reopened it but not committed yet
    with Session(engine) as retrying, retrying.begin():
        reopened = reopen_run(retrying, lambda name: TWO, run_id, Asked("ops", now))
        assert reopened.stage.name == "b"

        # Then a stage message taking b now would wait: its record is held
        with engine.connect() as other, pytest.raises(OperationalError) as held:
            other.execute(
                text(
                    "SELECT id FROM stage_runs WHERE run_id = :r AND stage = 'b' FOR UPDATE NOWAIT"
                ),
                {"r": run_id},
            )
        assert isinstance(held.value.orig, psycopg.errors.LockNotAvailable)
        # and a's record, done, is not touched
        with engine.connect() as other:
            other.execute(
                text(
                    "SELECT id FROM stage_runs WHERE run_id = :r AND stage = 'a' FOR UPDATE NOWAIT"
                ),
                {"r": run_id},
            )

    # And once committed the run is running
    with Session(engine) as session:
        assert session.scalars(select(Run.status).where(Run.id == run_id)).one() == "running"
    engine.dispose()
