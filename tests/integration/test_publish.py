"""Bulk publishing: many messages on one channel, one wait for RabbitMQ to take them all,
and runs recorded for a backfill's ticks in one transaction per batch."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dramatiq
import pika
import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.middleware import Middleware
from sqlalchemy import func, select, update

from taskpipes import registry
from taskpipes.rabbitmq import publish
from taskpipes.runtime.current import current_broker
from taskpipes.runtime.ticks import enqueue_ticks
from taskpipes.store import runs
from taskpipes.store.database import begin
from taskpipes.store.tables import Run
from tests import queues

T0 = datetime(2026, 8, 1, tzinfo=UTC)


@pytest.fixture
def broker(rabbitmq: str) -> Iterator[RabbitmqBroker]:
    broker = RabbitmqBroker(url=rabbitmq, confirm_delivery=True, middleware=[])
    yield broker
    broker.close()


def messages(count: int, queue: str = "bulk") -> list[dramatiq.Message]:
    return [dramatiq.Message(queue, "sink", (i,), {}, {}) for i in range(count)]


def test_a_batch_larger_than_one_transaction_arrives_whole(broker, rabbitmq: str) -> None:
    # When 1,200 messages are enqueued at once (three AMQP transactions)
    publish.enqueue_all(broker, messages(1200))
    # Then RabbitMQ holds every one of them
    assert queues.count(rabbitmq, "bulk") == 1200


def test_a_batch_no_queue_takes_fails(broker, rabbitmq: str) -> None:
    # Given a queue Dramatiq declared once, deleted behind its back
    broker.declare_queue("gone", ensure=True)
    with pika.BlockingConnection(pika.URLParameters(rabbitmq)) as connection:
        connection.channel().queue_delete("gone")
    # When a batch is sent to it, then the sender hears that nobody took it
    with pytest.raises(publish.Unroutable, match="gone"):
        publish.enqueue_all(broker, messages(3, queue="gone"))


class Sent(Middleware):
    """The ids of the tick messages a broker enqueued (workers may hand off meanwhile)."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def after_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message, delay) -> None:  # type: ignore[no-untyped-def]
        if message.actor_name.endswith("_tick"):
            self.ids.append(message.message_id)


@pytest.fixture
def sent() -> Iterator[Sent]:
    recorder = Sent()
    current_broker().middleware.append(recorder)
    yield recorder
    current_broker().middleware.remove(recorder)


@pytest.fixture
def drained() -> Iterator[None]:
    """After the test, the backfill's ticks are gone from the in-process broker: an
    in-process worker an earlier test started would otherwise work through them, one at a
    time (rollup's overlap policy is queue), while the next tests run on their own
    databases. The runs are marked done, so what a worker already holds does nothing."""
    yield
    with begin() as session:
        session.execute(
            update(Run).where(Run.status.in_(runs.IN_PROGRESS)).values(status=runs.SUCCEEDED)
        )
    rollup = registry.get("rollup")
    current_broker().flush(rollup.queue_name)
    current_broker().join(rollup.queue_name, timeout=60_000, fail_fast=False)


def test_a_backfill_records_each_tick_once_and_sends_each_request_once(
    app_env, sqlite_url: str, sent: Sent, drained: None
) -> None:
    app_env(sqlite_url)
    rollup = registry.get("rollup")
    ticks = [T0 + timedelta(minutes=15 * i) for i in range(700)]
    # When 700 ticks are enqueued (two batches), then again with 100 more
    first = enqueue_ticks(rollup, ticks)
    again = enqueue_ticks(rollup, ticks + [T0 + timedelta(days=30, minutes=i) for i in range(100)])
    # Then each tick has one run, and one message was sent per run: the second request for
    # a tick queued, running or done sends nothing
    assert [run_id for run_id, _ in again[:700]] == [run_id for run_id, _ in first]
    with begin() as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 800
        recorded = set(session.scalars(select(Run.message_id)))
    assert len(sent.ids) == 800
    assert set(sent.ids) == recorded
