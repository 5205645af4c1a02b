"""taskpipes.testing, as a user's test suite uses it: a pipeline declared in the test, its
tick run in the test's process on a SQLite file, and what each stage recorded read back."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipelines.config import TOP_N
from taskpipes import Context, PermanentError, Pipeline, Retries, Stage, registry, testing
from taskpipes.declare.settings import get_settings
from taskpipes.store.database import get_engine

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
# No retry: a failing stage fails its run at once.
ONCE = Retries(max=0, min_backoff_ms=100, max_backoff_ms=100)


def counted(rows: int):  # type: ignore[no-untyped-def]
    """A stage that declares `rows` written and hands them on as its output."""

    def stage(ctx: Context) -> int:
        return ctx.wrote(rows, "things")

    return stage


def refuses(ctx: Context) -> int:
    raise PermanentError("the feed answered 410 Gone")


COUNTS = Pipeline("testing_counts", stages=(Stage("fetch", counted(3)), Stage("store", counted(2))))
REFUSED = Pipeline(
    "testing_refused", stages=(Stage("fetch", counted(1)), Stage("parse", refuses)), retries=ONCE
)


def test_a_tick_runs_in_process_and_each_stage_record_reads_back(tmp_path: Path) -> None:
    # Given a pipeline declared by the test, on a SQLite file of its own
    with testing.configured(tmp_path / "test.db"), testing.declared(COUNTS):
        # When one tick runs
        run = testing.run_tick(COUNTS, at=T0.replace(minute=7))

        # Then the call returned with the run finished, each stage's record in order
        assert (run.pipeline, run.tick, run.status, run.error) == (
            "testing_counts",
            T0.replace(minute=7),
            "succeeded",
            None,
        )
        assert list(run.stages) == ["fetch", "store"]
        assert [(s.status, s.rows, s.error, s.attempts, s.output) for s in run.stages.values()] == [
            ("succeeded", 3, None, 1, 3),
            ("succeeded", 2, None, 1, 2),
        ]
        assert not run.already_done
        assert testing.read_run(run.id) == run


def test_a_failing_stage_fails_the_run_with_its_error(tmp_path: Path) -> None:
    with testing.configured(tmp_path / "test.db"), testing.declared(REFUSED):
        run = testing.run_tick("testing_refused", at=T0)

        assert run.status == "failed"
        assert run.stages["fetch"].status == "succeeded"
        assert run.stages["parse"].status == "failed"
        assert "410 Gone" in (run.stages["parse"].error or "")
        assert "410 Gone" in (run.error or "")


def test_a_tick_run_again_changes_nothing_and_runs_read_back_in_tick_order(
    tmp_path: Path,
) -> None:
    with testing.configured(tmp_path / "test.db"), testing.declared(COUNTS):
        later = testing.run_tick(COUNTS, at=T0.replace(hour=13))
        first = testing.run_tick(COUNTS, at=T0)

        again = testing.run_tick(COUNTS, at=T0)

        assert again.already_done and again.id == first.id
        assert again.stages == first.stages
        assert [r.id for r in testing.runs_of("testing_counts")] == [first.id, later.id]


def test_a_run_unfinished_at_the_timeout_is_returned_failed(tmp_path: Path) -> None:
    # Given a stage whose call to the outside world waits until the test lets it go (a
    # call holds no transaction: on SQLite a waiting write would hold the one write lock)
    gate = threading.Event()

    def waits(ctx: Context) -> None:
        assert gate.wait(30), "the test never opened the gate"

    stuck = Pipeline("testing_stuck", stages=(Stage("wait", waits, outside=True),), retries=ONCE)
    with testing.configured(tmp_path / "test.db"), testing.declared(stuck):
        try:
            # When the test waits less than the stage takes
            run = testing.run_tick(stuck, at=T0, timeout_s=0.5)
        finally:
            gate.set()
            # The stage ends on this test's database, not on whatever comes after it
            testing.in_process_broker().join(stuck.queue_name, timeout=30_000)

        # Then the run is recorded failed, saying why, and not left running
        assert run.status == "failed"
        assert "gave up waiting after 0.5 s" in (run.error or "")


def test_configured_sets_settings_without_the_environment_and_forgets_them_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an environment naming another database and a broker
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'environment.db'}")
    monkeypatch.setenv("BROKER_URL", "amqp://127.0.0.1:1")
    testing.reset()

    # When a test is configured for its own file, with a setting of its own
    with testing.configured(
        tmp_path / "test.db", TASKPIPES_MAX_CRASHES="7", TASKPIPES_TOP_N="9"
    ) as settings:
        # Then the kit uses that file, the in-process broker, and the settings, the
        # application's own included
        assert get_settings() is settings
        assert (settings.max_crashes, settings.in_process) == (7, True)
        assert TOP_N.get() == 9
        assert str(get_engine().url) == f"sqlite:///{tmp_path / 'test.db'}"

    # And afterwards the environment's configuration is back
    assert get_settings().database_url == f"sqlite:///{tmp_path / 'environment.db'}"
    assert get_settings().broker_url == "amqp://127.0.0.1:1"
    testing.reset()


def test_declared_withdraws_the_pipelines_after_the_block() -> None:
    with testing.declared(COUNTS):
        assert registry.get("testing_counts") is COUNTS

    with pytest.raises(KeyError, match="unknown pipeline 'testing_counts'"):
        registry.get("testing_counts")


def test_declared_leaves_the_application_s_own_pipelines_declared() -> None:
    application_s = registry.get("github_top")

    with testing.declared(application_s, COUNTS):
        pass

    assert registry.get("github_top") is application_s
    assert testing.in_process_broker().get_actor("github_top_tick") is not None
