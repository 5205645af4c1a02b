"""The run record: a run closed for a reason keeps it (SQLite file, the kit's own calls)."""

from __future__ import annotations

from datetime import UTC, datetime

from db import schema as migrate
from taskpipes import testing
from taskpipes.store import runs
from taskpipes.store.database import begin
from taskpipes.store.tables import Run

T0 = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)


def test_an_attempt_failing_after_its_run_was_closed_leaves_the_closing_reason(
    app_env, sqlite_url
) -> None:
    # Given a run whose fetch is being retried, closed by `taskpipes run` giving up
    migrate.upgrade(sqlite_url)
    app_env(sqlite_url)
    with begin() as session:
        run_id = runs.claim(session, "github_top", T0, "m-1", explicit=True).run_id
        assert run_id is not None
        runs.begin_stage(session, run_id, "fetch")
        runs.fail_stage(session, run_id, "fetch", "fetch: TransientError: first", 0.1)
    with begin() as session:
        assert runs.finish_run(session, run_id, runs.FAILED, error="gave up waiting") is not None

    # When the attempt still in flight fails after that
    with begin() as session:
        runs.fail_stage(session, run_id, "fetch", "fetch: TransientError: late", 0.1)

    # Then the run keeps the reason it was closed with; the stage shows the late error
    with begin() as session:
        run = session.get(Run, run_id)
        assert run is not None and (run.status, run.error) == ("failed", "gave up waiting")
    assert testing.read_run(run_id).stages["fetch"].error == "fetch: TransientError: late"


def test_a_redelivered_tick_message_leaves_its_settled_run_alone(app_env, sqlite_url) -> None:
    # Given runs their own tick messages closed cancelled, skipped and failed
    app_env(sqlite_url)
    outcomes = {"m-cancelled": runs.CANCELLED, "m-skipped": runs.SKIPPED, "m-failed": runs.FAILED}
    ticks = {}
    for minute, (message_id, status) in enumerate(outcomes.items()):
        ticks[message_id] = T0.replace(minute=minute)
        with begin() as session:
            run_id = runs.claim(session, "github_top", ticks[message_id], message_id, False).run_id
            assert run_id is not None
            runs.finish_run(session, run_id, status)

    # When each message is delivered again (its ack was lost; a dead letter replayed)
    with begin() as session:
        again = {m: runs.claim(session, "github_top", ticks[m], m, False) for m in outcomes}

    # Then the cancelled and skipped ticks stay as they were decided, and only the failed
    # one is taken again (a replayed dead letter finishes its run)
    assert again["m-cancelled"] == runs.Claim(None, "tick already cancelled")
    assert again["m-skipped"] == runs.Claim(None, "tick already skipped")
    assert again["m-failed"].run_id is not None
