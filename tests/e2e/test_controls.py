"""Pause and resume, cancel and jitter, on the in-process broker and a SQLite file.

The overlap policies are tested on RabbitMQ with worker processes (test_overlap_rabbitmq).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import dramatiq
import pytest
from dramatiq.middleware import Middleware
from sqlalchemy import select

from taskpipes import Context, Later, Pipeline, Stage, registry, testing
from taskpipes.cli.main import main
from taskpipes.declare.pipeline import tick_jitter
from taskpipes.runtime.catchup import catch_up_pipeline
from taskpipes.runtime.current import current_broker
from taskpipes.runtime.runner import ensure_workers, run_tick
from taskpipes.runtime.ticks import enqueue_tick, enqueue_ticks
from taskpipes.store import runs
from taskpipes.store.database import begin
from taskpipes.store.tables import PipelineControl, Run, StageRun
from tests.app import wait_for_run
from tests.processes import service_env, taskpipes
from tests.queues import wait_until

T0 = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)


def run_rows(pipeline: str) -> dict[datetime, str]:
    with begin() as session:
        return dict(
            session.execute(select(Run.tick, Run.status).where(Run.pipeline == pipeline)).all()
        )


def test_a_paused_pipeline_records_its_ticks_paused_and_runs_nothing(
    app_env, sqlite_url, capsys
) -> None:
    # Given rollup paused with a reason
    app_env(sqlite_url)
    assert main(["pause", "rollup", "--reason", "migrating buckets", "--by", "ana"]) == 0

    # When its tick comes
    outcome = run_tick(registry.get("rollup"), T0, 60)

    # Then the tick is recorded paused, with who paused it and why, and no stage ran
    assert outcome.status == runs.PAUSED
    assert outcome.error is not None and "paused by ana" in outcome.error
    assert "migrating buckets" in outcome.error
    assert outcome.stages == []


def test_the_pause_lives_in_the_database_for_every_process(app_env, sqlite_url, tmp_path) -> None:
    # Given another process pauses rollup (`taskpipes pause` on the same database)
    app_env(sqlite_url)
    env = service_env(tmp_path, DATABASE_URL=sqlite_url)
    result = taskpipes(["pause", "rollup", "--reason", "disk full"], env)
    assert result.returncode == 0, result.stderr
    assert "disk full" in result.stdout

    # Then this process's workers see it
    assert run_tick(registry.get("rollup"), T0, 60).status == runs.PAUSED

    # And a resume from yet another process is seen too
    assert taskpipes(["resume", "rollup"], env).returncode == 0
    assert run_tick(registry.get("rollup"), T0 + timedelta(minutes=15), 60).status == (
        runs.SUCCEEDED
    )


def test_pause_and_resume_say_what_was_wrong(app_env, sqlite_url, capsys) -> None:
    app_env(sqlite_url)
    assert main(["pause", "nosuch"]) == 2
    assert "unknown pipeline 'nosuch'" in capsys.readouterr().err
    assert main(["resume", "rollup"]) == 2
    assert "rollup is not paused" in capsys.readouterr().err


def test_on_resume_catch_up_runs_the_paused_ticks_per_policy_all(app_env, sqlite_url) -> None:
    # Given rollup (catch-up policy "all") paused over two ticks, then resumed
    app_env(sqlite_url)
    rollup = registry.get("rollup")
    main(["pause", "rollup"])
    for tick in (T0, T0 + timedelta(minutes=15)):
        assert run_tick(rollup, tick, 60).status == runs.PAUSED

    # While paused, catch-up leaves it alone
    assert catch_up_pipeline(rollup, T0 + timedelta(minutes=31)) == (0, 0)
    main(["resume", "rollup"])

    # When the catch-up pass comes
    assert catch_up_pipeline(rollup, T0 + timedelta(minutes=31)) == (2, 0)

    # Then both paused ticks run, and the pause is gone
    for tick in (T0, T0 + timedelta(minutes=15)):
        assert wait_for_run("rollup", tick).status == runs.SUCCEEDED
    with begin() as session:
        assert session.get_one(PipelineControl, "rollup").paused_at is None
    # and a second pass does not run them again
    assert catch_up_pipeline(rollup, T0 + timedelta(minutes=31)) == (0, 0)


def test_on_resume_catch_up_policy_latest_runs_only_the_newest_paused_tick(
    app_env, sqlite_url
) -> None:
    # Given language_stats (every 30 min, policy "latest") paused over two ticks
    app_env(sqlite_url)
    stats = registry.get("language_stats")
    later = T0 + timedelta(minutes=30)
    main(["pause", "language_stats"])
    for tick in (T0, later):
        assert run_tick(stats, tick, 60).status == runs.PAUSED
    main(["resume", "language_stats"])

    # When catch-up comes after the second tick
    assert catch_up_pipeline(stats, later + timedelta(minutes=29))[0] == 1

    # Then the newest tick runs and the older one stays recorded paused
    assert wait_for_run("language_stats", later).status == runs.SUCCEEDED
    assert run_rows("language_stats") == {T0: runs.PAUSED, later: runs.SUCCEEDED}


class Gate:
    """A stage that waits until the test opens the gate: a stage made slow on purpose."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.open = threading.Event()

    def stage(self, ctx: Context) -> int:
        self.entered.set()
        assert self.open.wait(60), "the test never opened the gate"
        return 1


def test_cancel_lets_the_running_stage_finish_and_starts_no_later_stage(
    app_env, postgres_url, declared, capsys
) -> None:
    # Given a two-stage pipeline whose first stage is running (on PostgreSQL: on SQLite the
    # running stage's transaction holds the one write lock, so a cancel waits for it)
    app_env(postgres_url)
    gate = Gate()
    pipeline = Pipeline(
        "gated_cancel", stages=(Stage("first", gate.stage), Stage("second", lambda ctx: 1))
    )
    declared(pipeline)
    ensure_workers(current_broker())
    run_id, _ = enqueue_tick(pipeline, T0)
    assert gate.entered.wait(30)

    # When the operator cancels it, and the stage then finishes
    assert main(["cancel", str(run_id), "--by", "ana"]) == 0
    assert "stage first was running or next: a running stage finishes" in capsys.readouterr().out
    gate.open.set()
    current_broker().join(pipeline.queue_name)

    # Then the run is cancelled with who and when, the first stage's work is recorded,
    # and the second stage never started
    with begin() as session:
        run = session.get_one(Run, run_id)
    assert (run.status, run.cancelled_by) == (runs.CANCELLED, "ana")
    assert run.cancelled_at is not None and run.error is not None
    assert "cancelled by ana" in run.error and "time limit of 600 s" in run.error
    stages = testing.read_run(run_id).stages
    assert {name: stage.status for name, stage in stages.items()} == {"first": runs.SUCCEEDED}

    # And cancelling it again says it is over
    assert main(["cancel", str(run_id)]) == 2
    assert "already finished (cancelled)" in capsys.readouterr().err


class NotYet(Exception):
    wait_seconds = 0.5


def test_a_delayed_stage_message_of_a_cancelled_run_does_nothing(
    app_env, sqlite_url, declared
) -> None:
    # Given a stage that defers itself (a delayed message) the first time
    app_env(sqlite_url)
    attempts: list[int] = []

    def defers_once(ctx: Context) -> int:
        attempts.append(ctx.run_id)
        if len(attempts) == 1:
            raise NotYet("later")
        return 1

    pipeline = Pipeline(
        "deferring_cancel",
        stages=(Stage("wait", defers_once, defer_on=(NotYet,), later=lambda c, e: Later(0.5)),),
    )
    declared(pipeline)
    ensure_workers(current_broker())
    run_id, _ = enqueue_tick(pipeline, T0)
    wait_until(lambda: attempts or None, 30, "the first attempt")

    # When the run is cancelled before the delayed message comes due
    assert main(["cancel", str(run_id)]) == 0
    current_broker().join(pipeline.queue_name)

    # Then the delayed message did nothing: no second attempt, the run stays cancelled
    assert attempts == [run_id]
    with begin() as session:
        assert session.get_one(Run, run_id).status == runs.CANCELLED


class TickSends(Middleware):
    """The ids of the tick messages the broker enqueued (a retry or a re-send counts too)."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def after_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message, delay) -> None:  # type: ignore[no-untyped-def]
        if message.actor_name.endswith("_tick"):
            self.ids.append(message.message_id)


def test_a_backfill_of_a_queue_pipeline_sends_each_tick_once_and_runs_them_one_at_a_time(
    app_env, database_url, declared
) -> None:
    # Given a two-stage pipeline with the queue policy, and workers running (on PostgreSQL
    # too: there the closer and the claims take turns on the control row's lock)
    app_env(database_url)
    calls: list[tuple[datetime, str]] = []
    lock = threading.Lock()

    def stage(name: str):  # type: ignore[no-untyped-def]
        def work(ctx: Context) -> int:
            with lock:
                calls.append((ctx.tick, name))
            return 1

        return work

    backend = database_url.split(":", 1)[0].split("+", 1)[0]  # one actor name per database
    pipeline = Pipeline(
        f"queued_backfill_{backend}",
        stages=(Stage("first", stage("first")), Stage("second", stage("second"))),
        overlap="queue",
    )
    declared(pipeline)
    ensure_workers(current_broker())
    sends = TickSends()
    current_broker().middleware.append(sends)
    ticks = [T0 + timedelta(minutes=i) for i in range(40)]
    try:
        # When 40 ticks are requested at once (a backfill), while the workers take them
        requested = enqueue_ticks(pipeline, ticks)
        finished = [wait_for_run(pipeline.name, tick) for tick in ticks]
    finally:
        current_broker().middleware.remove(sends)

    # Then every tick succeeded once, each tick message was sent exactly once (a waiting
    # tick is started by the run ahead of it, not sent again), and no two runs interleaved
    assert [run.status for run in finished] == [runs.SUCCEEDED] * len(ticks)
    assert [run.attempts for run in finished] == [1] * len(ticks)
    with begin() as session:
        recorded = set(session.scalars(select(Run.message_id).where(Run.pipeline == pipeline.name)))
    assert len(sends.ids) == len(ticks) and set(sends.ids) == recorded
    assert sorted(calls) == sorted((t, s) for t in ticks for s in ("first", "second"))
    order = [tick for tick, name in calls if name == "first"]
    assert calls == [(t, s) for t in order for s in ("first", "second")]
    # And each run started after the one before it finished
    by_start = sorted(finished, key=lambda run: run.started_at)
    assert all(b.started_at >= a.finished_at for a, b in pairwise(by_start))
    assert [run_id for run_id, _ in requested] == [run.id for run in finished]


def test_jitter_is_within_the_declared_bound_and_the_same_for_every_delivery() -> None:
    pipeline = Pipeline("jittery", stages=(Stage("s", lambda ctx: 1),), jitter_s=30)
    ticks = [T0 + timedelta(minutes=10 * n) for n in range(20)]
    delays = [tick_jitter(pipeline, tick) for tick in ticks]
    assert all(0 <= d <= 30 for d in delays)
    assert delays == [tick_jitter(pipeline, tick) for tick in ticks]  # a redelivery waits the same
    assert len(set(delays)) == len(delays)  # but ticks are spread
    other = Pipeline("jittery2", stages=(Stage("s", lambda ctx: 1),), jitter_s=30)
    assert tick_jitter(other, T0) != tick_jitter(pipeline, T0)
    assert tick_jitter(Pipeline("calm", stages=pipeline.stages), T0) == 0


def test_jitter_delays_the_first_stage(app_env, sqlite_url, declared) -> None:
    # Given a pipeline declared with a jitter of 2 s
    app_env(sqlite_url)
    pipeline = Pipeline("jittered", stages=(Stage("only", lambda ctx: 1),), jitter_s=2)
    declared(pipeline)

    # When a tick runs
    outcome = run_tick(pipeline, T0, 60)

    # Then its first stage began no earlier than the tick's jitter after the claim
    assert outcome.status == runs.SUCCEEDED
    with begin() as session:
        run = session.get_one(Run, outcome.run_id)
        stage = session.scalars(select(StageRun).where(StageRun.run_id == run.id)).one()
    assert run.started_at is not None and stage.started_at is not None
    assert stage.started_at - run.started_at >= timedelta(seconds=tick_jitter(pipeline, T0))


def test_a_bad_declaration_names_the_field() -> None:
    with pytest.raises(ValueError, match="overlap must be one of"):
        Pipeline("x", stages=(Stage("s", lambda ctx: 1),), overlap="sometimes")
    with pytest.raises(ValueError, match="jitter_s must be within"):
        Pipeline("x", stages=(Stage("s", lambda ctx: 1),), jitter_s=-1)


def test_status_api_readyz_page_and_gauge_show_the_pause(app_env, sqlite_url, api_server) -> None:
    import json
    import urllib.request

    from prometheus_client import REGISTRY

    from taskpipes.runtime.housekeeping import observe_pauses

    # Given rollup paused
    app_env(sqlite_url)
    main(["pause", "rollup", "--reason", "reindexing", "--by", "ana"])
    assert run_tick(registry.get("rollup"), T0, 60).status == runs.PAUSED

    # Then `taskpipes status` says so, in text and JSON
    from taskpipes.observe.report import report_json, report_text
    from taskpipes.observe.status import gather

    statuses = gather(T0)
    assert "PAUSED:       paused by ana at" in report_text(statuses)
    by_name = {p["pipeline"]: p for p in report_json(statuses, T0)["pipelines"]}
    assert "reindexing" in by_name["rollup"]["paused"] and by_name["github_top"]["paused"] is None

    # /api/runs names the pause and lists the paused tick; /readyz does not count it stale
    def get(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(api_server + path) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    body = json.loads(get("/api/runs")[1])
    assert "reindexing" in body["paused"]["rollup"] and list(body["paused"]) == ["rollup"]
    assert body["runs"][0]["status"] == runs.PAUSED
    checks = json.loads(get("/readyz")[1])["checks"]
    assert checks["rollup"].startswith("paused: paused by ana")
    assert checks["github_top"].startswith("stale")

    # The page shows it as paused, not as stale
    page = get("/")[1]
    assert 'id="paused-banner"' in page and "rollup: paused by ana" in page

    # And the gauge holds the moment of the pause, 0 for the others
    observe_pauses()
    since = REGISTRY.get_sample_value(
        "taskpipes_pipeline_paused_since_timestamp_seconds", {"pipeline": "rollup"}
    )
    other = REGISTRY.get_sample_value(
        "taskpipes_pipeline_paused_since_timestamp_seconds", {"pipeline": "github_top"}
    )
    assert since is not None and since > T0.timestamp() and other == 0
