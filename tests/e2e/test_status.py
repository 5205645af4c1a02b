"""`taskpipes status` and queue depths: the pure report with literals, then the real thing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import dq_name
from prometheus_client import REGISTRY
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

import actors
from db import schema as migrate
from taskpipes.observe.report import (
    PipelineStatus,
    QueueDepth,
    RunRow,
    StageRow,
    human_duration,
    pipeline_status,
    report_json,
    status_lines,
)
from taskpipes.rabbitmq.queues import queue_depths
from taskpipes.runtime.housekeeping import observe_queues, stub_depths
from taskpipes.store.tables import Run
from tests.clirun import run_cli
from tests.processes import service_env, taskpipes
from tests.queues import dead_message, declare, publish

NOW = datetime(2026, 8, 21, 12, 34, 56, tzinfo=UTC)
TEN_MINUTES = timedelta(minutes=10)


def row(run_id: int, tick: str, status: str, error: str | None = None) -> RunRow:
    at = datetime.fromisoformat(tick).replace(tzinfo=UTC)
    finished = None if status in ("queued", "running") else at + timedelta(seconds=30)
    return RunRow(run_id, at, status, at + timedelta(seconds=1), finished, error)


def status_of(success: RunRow | None, **changes) -> PipelineStatus:  # type: ignore[no-untyped-def]
    values = {"depths": QueueDepth(1, 2, 3), **changes}
    return pipeline_status(
        "github_top", "github_top", now=NOW, period=TEN_MINUTES, last_success=success, **values
    )


# --- the pure report ---------------------------------------------------------------


def test_a_success_younger_than_two_periods_is_fresh() -> None:
    status = status_of(row(7, "2026-08-21 12:20", "succeeded"))

    assert (status.success_age_s, status.fresh) == (896.0, True)


def test_a_success_two_periods_old_is_stale() -> None:
    status = status_of(row(7, "2026-08-21 12:14", "succeeded"))

    assert (status.success_age_s, status.fresh) == (1256.0, False)


def test_a_pipeline_that_never_succeeded_is_stale() -> None:
    status = status_of(None)

    assert (status.success_age_s, status.fresh) == (None, False)
    assert status_lines(status)[1] == "  last success: never (stale)"


def test_the_json_report_names_everything_an_operator_needs() -> None:
    status = status_of(
        row(7, "2026-08-21 12:30", "succeeded"),
        last_failure=row(6, "2026-08-21 12:20", "dead", "fetch: killed its worker"),
        in_progress=[row(9, "2026-08-21 12:34", "running"), row(8, "2026-08-21 12:32", "queued")],
    )

    assert report_json([status], NOW) == {
        "now": "2026-08-21T12:34:56+00:00",
        "pipelines": [
            {
                "pipeline": "github_top",
                "queue": "github_top",
                "period_seconds": 600.0,
                "fresh": True,
                "paused": None,
                "last_success": {
                    "run_id": 7,
                    "tick": "2026-08-21T12:30:00+00:00",
                    "status": "succeeded",
                    "started_at": "2026-08-21T12:30:01+00:00",
                    "finished_at": "2026-08-21T12:30:30+00:00",
                    "error": None,
                    "retried_by": None,
                    "retried_at": None,
                    "age_seconds": 296.0,
                },
                "last_failure": {
                    "run_id": 6,
                    "tick": "2026-08-21T12:20:00+00:00",
                    "status": "dead",
                    "started_at": "2026-08-21T12:20:01+00:00",
                    "finished_at": "2026-08-21T12:20:30+00:00",
                    "error": "fetch: killed its worker",
                    "retried_by": None,
                    "retried_at": None,
                },
                "in_progress": [
                    {
                        "run_id": 8,
                        "tick": "2026-08-21T12:32:00+00:00",
                        "status": "queued",
                        "started_at": "2026-08-21T12:32:01+00:00",
                        "finished_at": None,
                        "error": None,
                        "retried_by": None,
                        "retried_at": None,
                    },
                    {
                        "run_id": 9,
                        "tick": "2026-08-21T12:34:00+00:00",
                        "status": "running",
                        "started_at": "2026-08-21T12:34:01+00:00",
                        "finished_at": None,
                        "error": None,
                        "retried_by": None,
                        "retried_at": None,
                    },
                ],
                "queue_depths": {"ready": 1, "delayed": 2, "dead": 3},
                "queue_note": None,
                "newest_run": None,
            }
        ],
    }


def test_the_text_report() -> None:
    running = row(9, "2026-08-21 12:34", "running")
    fetched = '{"payload":{"items":[' + ",".join(f'{{"id":{i}}}' for i in range(100)) + "]}}"
    status = status_of(
        row(7, "2026-08-21 12:30", "succeeded"),
        last_failure=row(6, "2026-08-21 12:20", "failed", "x" * 400),
        in_progress=[running],
        depths=None,
        depths_note="in-process broker",
        newest=(
            running,
            [
                StageRow("fetch", "succeeded", 1, 0, fetched),
                StageRow("normalize", "running", 2, 0, None),
            ],
        ),
    )

    assert status_lines(status) == [
        "github_top (every 10m, queue github_top)",
        "  last success: tick 2026-08-21T12:30:00+00:00, 4m 56s ago (fresh)",
        f"  last failure: tick 2026-08-21T12:20:00+00:00 failed: {'x' * 297}...",
        "  in progress:  run 9 tick 2026-08-21T12:34:00+00:00 running"
        " since 2026-08-21T12:34:01+00:00",
        "  newest run:   run 9 tick 2026-08-21T12:34:00+00:00 running",
        # Each stage's output, cut to a line
        f"    fetch: succeeded, 0 rows, output {fetched[:119]}… ({len(fetched)} bytes)",
        "    normalize: running, 0 rows, 2 attempts",
        "  queue:        unknown (in-process broker)",
    ]
    assert report_json([status], NOW)["pipelines"][0]["newest_run"]["stages"][0] == {
        "stage": "fetch",
        "status": "succeeded",
        "attempts": 1,
        "rows_written": 0,
        "output": f"{fetched[:119]}… ({len(fetched)} bytes)",
    }


def test_durations_read_in_two_units_at_most() -> None:
    assert [human_duration(s) for s in (0, 12, 250, 3900, 90061, -5)] == [
        "0s",
        "12s",
        "4m 10s",
        "1h 5m",
        "1d 1h",
        "0s",
    ]


# --- queue depths --------------------------------------------------------------------


def test_stub_depths_count_ready_delayed_and_dead_messages() -> None:
    broker = StubBroker()
    broker.declare_queue("jobs")
    message = dramatiq.Message(queue_name="jobs", actor_name="a", args=(), kwargs={}, options={})
    broker.enqueue(message)
    broker.enqueue(message.copy(), delay=60_000)
    broker.dead_letters_by_queue["jobs"].append(MessageProxy(message))

    assert stub_depths(broker) == {"jobs": QueueDepth(ready=1, delayed=1, dead=1)}


def broker_state(broker: StubBroker) -> tuple[set[str], set[str], dict[str, int]]:
    dead = {queue: len(letters) for queue, letters in broker.dead_letters_by_queue.items()}
    return set(broker.queues), set(broker.delay_queues), {q: n for q, n in dead.items() if n}


def test_observe_queues_sets_the_gauge_with_the_in_process_broker() -> None:
    broker = actors.broker
    before = broker_state(broker)
    try:
        broker.declare_queue("observed")
        message = dramatiq.Message(
            queue_name="observed", actor_name="a", args=(), kwargs={}, options={}
        )
        broker.enqueue(message)
        broker.enqueue(message.copy())
        broker.dead_letters_by_queue["observed"].append(MessageProxy(message))

        observe_queues()

        def gauge(state: str) -> float | None:
            labels = {"queue": "observed", "state": state}
            return REGISTRY.get_sample_value("taskpipes_queue_messages", labels)

        assert [gauge(state) for state in ("ready", "delayed", "dead")] == [2.0, 0.0, 1.0]
    finally:
        # The in-process broker is shared by every test in this process: leave it as found
        broker.flush("observed")
        broker.dead_letters_by_queue.pop("observed", None)
        for queue in ("observed", dq_name("observed")):
            broker.queues.pop(queue, None)
        broker.delay_queues.discard(dq_name("observed"))
    assert broker_state(broker) == before


def fill_github_top(url: str) -> None:
    """Two ready messages, one delayed and one dead in github_top's three queues."""
    declare(url, "github_top")
    for queue in ("github_top", "github_top", "github_top.DQ", "github_top.XQ"):
        publish(url, queue, dead_message("github_top_store", "github_top"))


def test_rabbitmq_depths_count_all_three_queues_and_missing_ones_as_zero(rabbitmq: str) -> None:
    fill_github_top(rabbitmq)

    assert queue_depths(rabbitmq, ["github_top", "never_declared"]) == {
        "github_top": QueueDepth(ready=2, delayed=1, dead=1),
        "never_declared": QueueDepth(ready=0, delayed=0, dead=0),
    }


# --- the command ---------------------------------------------------------------------


def add_run(
    session: Session, pipeline: str, tick: datetime, status: str, error: str | None = None
) -> None:
    finished = None if status in ("queued", "running") else tick + timedelta(seconds=30)
    session.add(
        Run(
            pipeline=pipeline,
            tick=tick,
            status=status,
            attempts=1,
            started_at=tick,
            finished_at=finished,
            error=error,
        )
    )


def test_status_json_reports_fresh_stale_failures_and_queue_depths(
    tmp_path: Path, postgres_url: str, rabbitmq: str
) -> None:
    # Given github_top succeeded minutes ago and runs now, rollup last succeeded hours ago
    migrate.upgrade(postgres_url)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    engine = create_engine(postgres_url)
    with Session(engine) as session, session.begin():
        add_run(session, "github_top", now - timedelta(minutes=5), "succeeded")
        add_run(session, "github_top", now, "running")
        add_run(session, "rollup", now - timedelta(hours=3), "succeeded")
        add_run(
            session, "rollup", now - timedelta(hours=2), "failed", "buckets: OperationalError: gone"
        )
    engine.dispose()
    fill_github_top(rabbitmq)

    # When an operator asks
    env = service_env(tmp_path, DATABASE_URL=postgres_url, BROKER_URL=rabbitmq)
    result = taskpipes(["status", "--json"], env)

    # Then github_top is fresh with one run in progress and its queue depths, rollup stale
    assert result.returncode == 0, result.stderr
    report = {p["pipeline"]: p for p in json.loads(result.stdout)["pipelines"]}
    top, rollup = report["github_top"], report["rollup"]
    assert (top["fresh"], rollup["fresh"]) == (True, False)
    assert top["last_success"]["tick"] == (now - timedelta(minutes=5)).isoformat()
    assert [(r["tick"], r["status"]) for r in top["in_progress"]] == [(now.isoformat(), "running")]
    assert top["queue_depths"] == {"ready": 2, "delayed": 1, "dead": 1}
    assert rollup["last_failure"]["error"] == "buckets: OperationalError: gone"
    assert rollup["queue_depths"] == {"ready": 0, "delayed": 0, "dead": 0}


def test_status_without_a_broker_reports_no_depths(tmp_path: Path, sqlite_url: str) -> None:
    migrate.upgrade(sqlite_url)

    result = run_cli(["status"], service_env(tmp_path, DATABASE_URL=sqlite_url), tmp_path)

    assert result.returncode == 0, result.stderr
    assert "github_top (every 10m, queue github_top)" in result.stdout
    assert "  last success: never (stale)" in result.stdout
    assert "  queue:        unknown (in-process broker)" in result.stdout
