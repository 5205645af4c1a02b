"""Bulk publishing: many messages on one channel, one wait for RabbitMQ to take them all,
and runs recorded for a backfill's ticks in one transaction per batch."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dramatiq
import pika
import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from sqlalchemy import func, select

from taskpipes import publish, registry
from taskpipes.database import begin
from taskpipes.models import Run
from taskpipes.ticks import enqueue_ticks
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


def test_a_backfill_records_each_tick_once_and_sends_only_new_requests(
    app_env, sqlite_url: str
) -> None:
    app_env(sqlite_url)
    rollup = registry.get("rollup")
    ticks = [T0 + timedelta(minutes=15 * i) for i in range(700)]
    broker = registry.broker
    # When 700 ticks are enqueued (two batches), then again with 100 more
    first = enqueue_ticks(rollup, ticks)
    sent = broker.queues[rollup.queue_name].qsize()
    again = enqueue_ticks(rollup, ticks + [T0 + timedelta(days=30, minutes=i) for i in range(100)])
    # Then each tick has one run, its message sent once; nothing had succeeded yet
    assert sent == 700
    assert broker.queues[rollup.queue_name].qsize() == 800
    assert [run_id for run_id, _ in again[:700]] == [run_id for run_id, _ in first]
    assert not any(done for _, done in again)
    with begin() as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 800
        assert session.scalar(select(func.count(func.distinct(Run.message_id)))) == 800
