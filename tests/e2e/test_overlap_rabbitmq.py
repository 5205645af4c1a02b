"""Overlap policies on RabbitMQ and PostgreSQL with a real `dramatiq actors` process.

Each pipeline (tests/slow_pipelines.py) has a first stage that waits at a gate the test
opens, so the second tick always arrives while the first run is inside its slow stage.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dramatiq
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine

from db import schema as migrate
from taskpipes.store import runs
from taskpipes.store.tables import Run, StageRun
from tests.processes import VENV_BIN, metric_sum, process, scrape, service_env
from tests.queues import declare, publish, wait_until

T1 = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)
T2 = T1 + timedelta(minutes=1)
WAIT_S = 60


class Overlap:
    def __init__(self, url: str, engine: Engine, gates: Path, env: dict[str, str]) -> None:
        self.url, self.engine, self.gates, self.env = url, engine, gates, env

    def tick(self, pipeline: str, tick: datetime) -> None:
        message = dramatiq.Message(
            queue_name=pipeline,
            actor_name=f"{pipeline}_tick",
            args=(),
            kwargs={"tick": tick.isoformat(), "explicit": True},
            options={},
        )
        publish(self.url, pipeline, message)

    def gate(self, pipeline: str, tick: datetime, suffix: str) -> Path:
        return self.gates / f"{pipeline}-{tick:%H%M}.{suffix}"

    def entered(self, pipeline: str, tick: datetime) -> None:
        wait_until(lambda: self.gate(pipeline, tick, "entered").exists(), WAIT_S, f"{tick} slow")

    def open(self, pipeline: str, *ticks: datetime) -> None:
        for tick in ticks:
            self.gate(pipeline, tick, "open").touch()

    def run(self, pipeline: str, tick: datetime) -> Run | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(Run).where(Run.pipeline == pipeline, Run.tick == tick))
            return row.first()  # type: ignore[return-value]

    def status(self, pipeline: str, tick: datetime, *wanted: str) -> Run:
        def reached() -> Run | None:
            run = self.run(pipeline, tick)
            return run if run is not None and run.status in wanted else None

        return wait_until(reached, WAIT_S, f"{pipeline} {tick:%H:%M} {wanted}")

    def stages(self, run_id: int) -> dict[str, str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(StageRun.stage, StageRun.status).where(StageRun.run_id == run_id)
            )
            return {stage: status for stage, status in rows}


@pytest.fixture(scope="module")
def overlap(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One worker process (4 threads) for every policy's test: its start-up is the cost."""
    from tests import services

    tmp = tmp_path_factory.mktemp("overlap")
    gates = tmp / "gates"
    gates.mkdir()
    with services.postgres_database() as db_url, services.rabbitmq_vhost() as url:
        migrate.upgrade(db_url)
        env = service_env(tmp, DATABASE_URL=db_url, BROKER_URL=url, TASKPIPES_TEST_GATES=str(gates))
        for policy in ("allow", "skip", "queue", "cancel_previous"):
            declare(url, f"overlap_{policy}")
        args = [
            str(VENV_BIN / "dramatiq"),
            "tests.slow_pipelines",
            "--processes",
            "1",
            "--threads",
            "4",
        ]
        engine = create_engine(db_url)
        with process(args, env, tmp / "workers.log"):
            yield Overlap(url, engine, gates, env)
        engine.dispose()


def test_allow_runs_both_ticks_at_once(overlap: Overlap) -> None:
    p = "overlap_allow"
    overlap.tick(p, T1)
    overlap.entered(p, T1)
    overlap.tick(p, T2)
    overlap.entered(p, T2)  # the second is inside its slow stage while the first still is
    overlap.open(p, T1, T2)
    assert overlap.status(p, T1, *runs.FINISHED).status == runs.SUCCEEDED
    assert overlap.status(p, T2, *runs.FINISHED).status == runs.SUCCEEDED


def test_skip_records_the_second_tick_skipped_with_the_reason_and_counts_it(
    overlap: Overlap,
) -> None:
    p = "overlap_skip"
    overlap.tick(p, T1)
    overlap.entered(p, T1)
    overlap.tick(p, T2)

    second = overlap.status(p, T2, *runs.FINISHED)
    first = overlap.run(p, T1)
    assert first is not None and second.status == runs.SKIPPED
    assert second.error == (
        f"overlap policy skip: run {first.id} (tick {T1.isoformat()}) still running"
    )
    assert not overlap.gate(p, T2, "entered").exists()
    metrics = scrape(int(overlap.env["dramatiq_prom_port"]))
    assert metric_sum(metrics, "taskpipes_ticks_skipped_total", pipeline=p, reason="overlap") == 1

    overlap.open(p, T1)
    assert overlap.status(p, T1, *runs.FINISHED).status == runs.SUCCEEDED


def test_queue_starts_the_waiting_ticks_one_at_a_time_after_the_first_finishes(
    overlap: Overlap,
) -> None:
    p = "overlap_queue"
    t3 = T2 + timedelta(minutes=1)
    overlap.tick(p, T1)
    overlap.entered(p, T1)
    overlap.tick(p, t3)
    overlap.tick(p, T2)

    # The later ticks were claimed once each and wait, without a message of their own
    for tick in (T2, t3):
        waiting = overlap.status(p, tick, runs.WAITING)
        assert waiting.attempts == 1
        assert not overlap.gate(p, tick, "entered").exists()

    # When the first run finishes, the oldest waiting tick starts, then the next
    overlap.open(p, T1)
    first = overlap.status(p, T1, *runs.FINISHED)
    overlap.entered(p, T2)
    assert overlap.run(p, t3).status == runs.WAITING  # type: ignore[union-attr]
    overlap.open(p, T2, t3)
    second = overlap.status(p, T2, *runs.FINISHED)
    third = overlap.status(p, t3, *runs.FINISHED)
    assert [r.status for r in (first, second, third)] == [runs.SUCCEEDED] * 3
    assert (second.attempts, third.attempts) == (1, 1)  # never claimed again while waiting
    assert first.finished_at is not None and second.finished_at is not None
    assert second.started_at is not None and third.started_at is not None
    assert second.started_at >= first.finished_at
    assert third.started_at >= second.finished_at


def test_cancel_previous_cancels_the_first_run_between_stages(overlap: Overlap) -> None:
    p = "overlap_cancel_previous"
    overlap.tick(p, T1)
    overlap.entered(p, T1)
    overlap.tick(p, T2)

    first = overlap.status(p, T1, runs.CANCELLED)
    assert first.cancelled_by == f"overlap policy cancel_previous of tick {T2.isoformat()}"
    overlap.entered(p, T2)
    overlap.open(p, T1, T2)
    assert overlap.status(p, T2, *runs.FINISHED).status == runs.SUCCEEDED
    # The first run's slow stage finished; its next stage never started
    wait_until(lambda: overlap.stages(first.id).get("slow") == runs.SUCCEEDED, WAIT_S, "slow")
    assert overlap.stages(first.id) == {"slow": runs.SUCCEEDED}
    assert overlap.run(p, T1).status == runs.CANCELLED  # type: ignore[union-attr]
