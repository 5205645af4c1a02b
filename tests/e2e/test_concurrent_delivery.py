"""Copies of one stage message delivered at the same time apply the stage's writes once.

RabbitMQ requeues a consumer's unacked messages when its connection drops, and another
worker takes them while the first is still working; a hand-off whose confirm was lost is
sent again. So copies of one stage message do run at the same time. Each scenario delivers
COPIES copies of stage `b`'s message of one run at once (tests.concurrent_stages), then
counts the rows each stage wrote (one per commit of its code) and how the run closed:

- on PostgreSQL and RabbitMQ, with one `dramatiq tests.concurrent_pipelines -p 1 -t 4`
  worker process for the whole module; stage b holds its transaction open until the
  other copies are inside it or waiting on a lock (tests.copies), so they overlap;
- on a SQLite file, with the in-process broker's worker threads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import dramatiq
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from db import schema as migrate
from taskpipes import testing
from taskpipes.declare import clock
from taskpipes.declare.pipeline import Pipeline
from taskpipes.runtime.current import current_broker
from taskpipes.runtime.runner import ensure_workers
from taskpipes.store import controls, runs
from taskpipes.store.database import begin, get_engine, reading
from taskpipes.store.tables import Run, StageRun
from tests import services
from tests.concurrent_stages import (
    CALLING,
    CANCELLED,
    COPIES,
    LAST,
    PIPELINES,
    PLAIN,
    QUEUE,
    WRITES,
)
from tests.processes import VENV_BIN, metric_sum, process, scrape, service_env
from tests.queues import declare, publish, wait_until

T0 = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)
# How long a scenario waits for the workers.
WAIT_S = 60
# The kit's counter of closed runs, and Dramatiq's of processed messages.
RUNS_METRIC = "taskpipes_pipeline_runs_total"
MESSAGES_METRIC = "dramatiq_messages_total"


class Backend:
    """A database and broker the scenarios run on; the test process reads the database
    through the kit's settings, which name it."""

    def send(self, message: dramatiq.Message) -> None:
        raise NotImplementedError

    def settle(self, deliveries: Mapping[str, int]) -> None:
        """Wait until each actor named has processed at least that many messages."""
        raise NotImplementedError

    def closes(self, pipeline: str, status: str) -> float:
        """How many times a worker counted a run of `pipeline` closed with `status`."""
        raise NotImplementedError

    def start(self, pipeline: Pipeline) -> int:
        """Send a tick of `pipeline`; its run id once stage a is done (b's message sent)."""
        self.send(
            message(pipeline.actor_name("tick"), kwargs={"tick": T0.isoformat(), "explicit": True})
        )
        run_id = wait_until(lambda: run_past_a(pipeline.name), WAIT_S, f"{pipeline.name} a")
        assert run_id is not None  # wait_until returns only a true value
        return run_id

    def send_copies(self, pipeline: Pipeline, run_id: int, count: int) -> None:
        for _ in range(count):
            self.send(message(pipeline.actor_name("b"), args=(run_id,), run_id=run_id))


class InProcess(Backend):
    """A SQLite file, and the in-process broker with its worker threads."""

    def send(self, message: dramatiq.Message) -> None:
        current_broker().enqueue(message)

    def settle(self, deliveries: Mapping[str, int]) -> None:
        current_broker().join(QUEUE, timeout=WAIT_S * 1000)

    def closes(self, pipeline: str, status: str) -> float:
        labels = {"pipeline": pipeline, "status": status}
        return REGISTRY.get_sample_value(RUNS_METRIC, labels) or 0.0


class WorkerProcess(Backend):
    """PostgreSQL, RabbitMQ and one `dramatiq` worker process (its metrics scraped)."""

    def __init__(self, amqp_url: str, metrics_port: int) -> None:
        self.amqp_url, self.metrics_port = amqp_url, metrics_port

    def send(self, message: dramatiq.Message) -> None:
        publish(self.amqp_url, QUEUE, message)

    def settle(self, deliveries: Mapping[str, int]) -> None:
        def processed() -> bool:
            text = scrape(self.metrics_port)
            return all(
                metric_sum(text, MESSAGES_METRIC, actor_name=actor) >= count
                for actor, count in deliveries.items()
            )

        wait_until(processed, WAIT_S, f"deliveries {dict(deliveries)}")

    def closes(self, pipeline: str, status: str) -> float:
        return metric_sum(scrape(self.metrics_port), RUNS_METRIC, pipeline=pipeline, status=status)


def message(
    actor: str,
    args: tuple[int, ...] = (),
    kwargs: dict[str, object] | None = None,
    run_id: int | None = None,
) -> dramatiq.Message:
    """A message as the kit sends it (a stage's carries its run id as an option too)."""
    options = {} if run_id is None else {runs.RUN_OPTION: run_id}
    return dramatiq.Message(
        queue_name=QUEUE, actor_name=actor, args=args, kwargs=kwargs or {}, options=options
    )


def run_past_a(pipeline: str) -> int | None:
    with reading() as session:
        return session.scalar(
            select(Run.id)
            .join(StageRun, StageRun.run_id == Run.id)
            .where(Run.pipeline == pipeline, StageRun.stage == "a")
            .where(StageRun.status == runs.SUCCEEDED)
        )


def writes(run_id: int) -> Counter[str]:
    """Rows written by each stage of the run: one per commit of the stage's code."""
    with reading() as session:
        return Counter(session.scalars(select(WRITES.c.stage).where(WRITES.c.run_id == run_id)))


def notes(run_id: int, stage: str) -> list[str | None]:
    with reading() as session:
        query = select(WRITES.c.note).where(WRITES.c.run_id == run_id, WRITES.c.stage == stage)
        return list(session.scalars(query))


def outputs(run_id: int) -> dict[str, object]:
    """Each recorded stage's output."""
    with reading() as session:
        query = select(StageRun.stage, StageRun.output).where(StageRun.run_id == run_id)
        return {stage: output for stage, output in session.execute(query)}


def finished_run(run_id: int) -> Run:
    def finished() -> Run | None:
        with reading() as session:
            run = session.get_one(Run, run_id)
        return run if run.status in runs.FINISHED else None

    run = wait_until(finished, WAIT_S, f"run {run_id} to finish")
    assert run is not None  # wait_until returns only a true value
    return run


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.rabbitmq])],
)
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    """One backend for every scenario of the module (a worker process's start-up is the
    cost); each scenario has a pipeline of its own, so their runs never meet."""
    tmp = tmp_path_factory.mktemp(f"concurrent-{request.param}")
    with pytest.MonkeyPatch.context() as env:
        if request.param == "sqlite":
            yield from in_process(env, f"sqlite:///{tmp / 'taskpipes.db'}")
        else:
            with services.postgres_database() as db_url:
                yield from worker_process(env, db_url, tmp)
        testing.reset()


def use_database(env: pytest.MonkeyPatch, url: str) -> None:
    """Point the kit's settings in this process at `url`, with the schema and WRITES."""
    env.setenv("DATABASE_URL", url)
    testing.reset()
    migrate.upgrade(url)
    WRITES.metadata.create_all(get_engine())


def in_process(env: pytest.MonkeyPatch, url: str) -> Iterator[Backend]:
    use_database(env, url)
    with testing.declared(*PIPELINES):
        ensure_workers(current_broker())
        yield InProcess()


def worker_process(env: pytest.MonkeyPatch, db_url: str, tmp: Path) -> Iterator[Backend]:
    use_database(env, db_url)
    with services.rabbitmq_vhost() as amqp_url:
        declare(amqp_url, QUEUE)
        worker_env = service_env(tmp, DATABASE_URL=db_url, BROKER_URL=amqp_url)
        args = [str(VENV_BIN / "dramatiq"), "tests.concurrent_pipelines", "-p", "1", "-t", "4"]
        with process(args, worker_env, tmp / "workers.log"):
            yield WorkerProcess(amqp_url, int(worker_env["dramatiq_prom_port"]))


def test_copies_of_a_stage_message_at_once_write_once(backend: Backend) -> None:
    # Given a run whose stage a is done, so b's message is on its way
    run_id = backend.start(PLAIN)

    # When more copies of b's message come at the same time
    backend.send_copies(PLAIN, run_id, COPIES - 1)
    backend.settle({PLAIN.actor_name("b"): COPIES, PLAIN.actor_name("c"): 1})

    # Then every stage wrote once, and the run succeeded, closed once
    run = finished_run(run_id)
    assert writes(run_id) == {"a": 1, "b": 1, "c": 1}
    # and each stage worked from the output its stage before recorded, once
    assert notes(run_id, "b") == [f"a of run {run_id}"]
    assert notes(run_id, "c") == [f"b of run {run_id}"]
    assert run.status == runs.SUCCEEDED
    assert backend.closes(PLAIN.name, runs.SUCCEEDED) == 1


def test_copies_of_a_calling_stage_at_once_write_once(backend: Backend) -> None:
    # Given a run whose stage a is done, and whose stage b calls out (outside=True)
    run_id = backend.start(CALLING)

    # When more copies of b's message come at the same time
    backend.send_copies(CALLING, run_id, COPIES - 1)
    backend.settle({CALLING.actor_name("b"): COPIES, CALLING.actor_name("c"): 1})

    # Then the call may have repeated, but its answer was recorded once and c's write,
    # made from it, happened once
    run = finished_run(run_id)
    assert writes(run_id) == {"a": 1, "c": 1}
    assert notes(run_id, "c") == [f"answer for run {run_id}"]
    assert outputs(run_id) == {
        "a": f"a of run {run_id}",
        "b": f"answer for run {run_id}",
        "c": f"c of run {run_id}",
    }
    assert run.status == runs.SUCCEEDED
    assert backend.closes(CALLING.name, runs.SUCCEEDED) == 1


def test_copies_of_the_last_stage_at_once_write_once_and_close_the_run_once(
    backend: Backend,
) -> None:
    # Given a run whose stage a is done and whose last stage b is on its way
    run_id = backend.start(LAST)

    # When more copies of b's message come at the same time
    backend.send_copies(LAST, run_id, COPIES - 1)
    backend.settle({LAST.actor_name("b"): COPIES})

    # Then b wrote once, and the run closed once, succeeded
    run = finished_run(run_id)
    assert writes(run_id) == {"a": 1, "b": 1}
    assert (run.status, run.error) == (runs.SUCCEEDED, None)
    assert run.finished_at is not None
    assert backend.closes(LAST.name, runs.SUCCEEDED) == 1


def test_copies_of_a_stage_message_of_a_cancelled_run_do_nothing(backend: Backend) -> None:
    # Given a claimed run, cancelled before its stage b ran
    with begin() as session:
        run = Run(
            pipeline=CANCELLED.name,
            tick=T0,
            status=runs.RUNNING,
            attempts=1,
            message_id="cancelled-tick",
            enqueued_at=clock.now(),
            started_at=clock.now(),
        )
        session.add(run)
        session.flush()
        run_id = run.id
    with begin() as session:
        assert controls.cancel(session, CANCELLED, session.get_one(Run, run_id), "ana", clock.now())

    # When copies of b's message come at the same time
    backend.send_copies(CANCELLED, run_id, COPIES)
    backend.settle({CANCELLED.actor_name("b"): COPIES})

    # Then no stage wrote, and the run stays cancelled, closed by the cancel alone
    assert writes(run_id) == {}
    with reading() as session:
        run = session.get_one(Run, run_id)
    assert (run.status, run.cancelled_by) == (runs.CANCELLED, "ana")
    assert backend.closes(CANCELLED.name, runs.SUCCEEDED) == 0
