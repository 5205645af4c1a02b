"""RabbitMQ as an operator sees it, through pika: queue depths and held dead letters.

Dramatiq gives each queue `Q` a delay queue `Q.DQ` and a dead-letter queue `Q.XQ`.
Depths come from passive declares, which never create a queue: a queue that does not
exist yet simply holds nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pika
from dramatiq.common import dq_name, xq_name
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker

from taskpipes.broker import with_connection_params
from taskpipes.report import QueueDepth

# RabbitMQ's reply code for a queue that does not exist.
NOT_FOUND = 404
# Persistent, like every message Dramatiq publishes.
PERSISTENT = pika.BasicProperties(delivery_mode=2)


class _QuietNotFound(logging.Filter):
    """pika logs every closed channel as a warning; a 404 on a passive declare is expected."""

    def filter(self, record: logging.LogRecord) -> bool:
        return f"({NOT_FOUND})" not in record.getMessage()


logging.getLogger("pika.channel").addFilter(_QuietNotFound())


def connect(broker_url: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(with_connection_params(broker_url)))


def _counts(connection: pika.BlockingConnection, queue: str) -> tuple[int, int]:
    """(messages ready, consumers) of `queue`; zeros when it does not exist."""
    # A failed passive declare closes its channel, so each count gets its own.
    channel = connection.channel()
    try:
        method = channel.queue_declare(queue, passive=True).method
        return method.message_count, method.consumer_count
    except ChannelClosedByBroker as exc:
        if exc.reply_code == NOT_FOUND:
            return 0, 0
        raise
    finally:
        if channel.is_open:
            channel.close()


def message_count(connection: pika.BlockingConnection, queue: str) -> int:
    """Messages ready in `queue`; 0 when it does not exist."""
    return _counts(connection, queue)[0]


def consumer_count(broker_url: str, queue: str) -> int:
    """Workers consuming `queue` now; 0 when it does not exist."""
    with connect(broker_url) as connection:
        return _counts(connection, queue)[1]


def queue_depths(broker_url: str, queues: Iterable[str]) -> dict[str, QueueDepth]:
    """Ready, delayed and dead message counts for each of Dramatiq's canonical `queues`."""
    with connect(broker_url) as connection:
        return {
            queue: QueueDepth(
                ready=message_count(connection, queue),
                delayed=message_count(connection, dq_name(queue)),
                dead=message_count(connection, xq_name(queue)),
            )
            for queue in sorted(queues)
        }


@dataclass(frozen=True)
class HeldMessage:
    """A message taken from a queue and not yet acknowledged: still the queue's own."""

    channel: BlockingChannel
    delivery_tag: int
    body: bytes

    def ack(self) -> None:
        """Remove the message from its queue for good."""
        self.channel.basic_ack(self.delivery_tag)


@contextmanager
def held_dead_letters(
    connection: pika.BlockingConnection, queue: str
) -> Iterator[list[HeldMessage]]:
    """Hold every message of `queue`'s `.XQ` on one channel, with publisher confirms on.

    Nothing is removed unless acked: closing the channel at the end hands every message
    not acked back to the queue, so reading is non-destructive.
    """
    dead_queue = xq_name(queue)
    expected = message_count(connection, dead_queue)
    channel = connection.channel()
    channel.confirm_delivery()
    try:
        yield list(_get_all(channel, dead_queue, expected)) if expected else []
    finally:
        if channel.is_open:
            channel.close()


def _get_all(channel: BlockingChannel, queue: str, limit: int) -> Iterator[HeldMessage]:
    # Held messages are not delivered again on this channel; the limit only stops a queue
    # that keeps filling while we read.
    for _ in range(limit):
        method, _properties, body = channel.basic_get(queue, auto_ack=False)
        if method is None:
            return
        yield HeldMessage(channel, method.delivery_tag, body)


def republish(held: HeldMessage, queue: str, body: bytes) -> None:
    """Publish `body` to `queue` and wait for RabbitMQ's confirm.

    `mandatory` turns a publish to a missing queue into an error instead of a silent drop;
    pika raises on a nack or a return, so the caller acks the original only on success.
    """
    held.channel.basic_publish("", queue, body, PERSISTENT, mandatory=True)
