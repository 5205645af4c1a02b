"""RabbitMQ queues the way Dramatiq declares them, filled and counted by the tests directly."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

import dramatiq
import pika
from pika.exceptions import ChannelClosedByBroker

from taskpipes.declare.settings import load_settings
from taskpipes.rabbitmq.queues import TypedQueuesBroker

# How often a waiting test looks again.
POLL_S = 0.2
T = TypeVar("T")


def broker_for(url: str) -> TypedQueuesBroker:
    """A broker declaring queues as the workers of this test run do: TASKPIPES_QUEUE_TYPE
    in the tests' environment switches the whole run to quorum queues."""
    settings = load_settings(os.environ)
    return TypedQueuesBroker(
        queue_type=settings.queue_type,
        max_crashes=settings.max_crashes,
        url=url,
        confirm_delivery=True,
        middleware=[],
    )


def declare(url: str, queue: str) -> None:
    """Declare `queue` with its `.DQ` and `.XQ` exactly as Dramatiq's workers would."""
    broker = broker_for(url)
    try:
        broker.declare_queue(queue, ensure=True)
    finally:
        broker.close()


def publish(url: str, queue: str, message: dramatiq.Message) -> None:
    """Put `message` straight into `queue` (e.g. `github_top.XQ`), persistent."""
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        properties = pika.BasicProperties(delivery_mode=2)
        channel.basic_publish("", queue, message.encode(), properties, mandatory=True)


def count(url: str, queue: str) -> int:
    """Messages ready in `queue`, 0 if it does not exist."""
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        try:
            return connection.channel().queue_declare(queue, passive=True).method.message_count
        except ChannelClosedByBroker:
            return 0


def peek(url: str, queue: str) -> dict[str, object]:
    """The first message of `queue`, decoded and left in the queue."""
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        method, _properties, body = connection.channel().basic_get(queue, auto_ack=False)
        assert method is not None, f"{queue} is empty"
        return dramatiq.Message.decode(body).asdict()


# What Retries stores in `options.traceback`.
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "stage.py", line 9, in work\n'
    '    raise ValueError("boom")\n'
    "ValueError: boom\n"
)


def dead_message(actor: str, queue: str, **options: object) -> dramatiq.Message:
    """A message as Retries leaves it after its last failure."""
    return dramatiq.Message(
        queue_name=queue,
        actor_name=actor,
        args=(7,),
        kwargs={},
        options={"retries": 5, "traceback": TRACEBACK, **options},
    )


def wait_until(condition: Callable[[], T], timeout_s: float, what: str) -> T:
    """Poll `condition` until it returns something true, and return that; fail naming
    `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(POLL_S)
    return value
