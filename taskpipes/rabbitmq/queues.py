"""RabbitMQ through pika: how queues are declared, queue depths and held dead letters.

Dramatiq gives each queue `Q` a delay queue `Q.DQ` and a dead-letter queue `Q.XQ`.
Depths come from passive declares, which never create a queue: a queue that does not
exist yet simply holds nothing. `BROKER_URL` may list the nodes of a cluster separated by
`;`: a connection tries them in turn.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import dramatiq
import pika
from dramatiq.brokers.rabbitmq import DEAD_MESSAGE_TTL, RabbitmqBroker
from dramatiq.common import dq_name, xq_name
from dramatiq.errors import ConnectionClosed
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker


@dataclass(frozen=True)
class QueueDepth:
    """Messages in a queue `Q`: ready in Q, waiting in `Q.DQ`, dead in `Q.XQ`."""

    ready: int
    delayed: int
    dead: int

    def by_state(self) -> dict[str, int]:
        return {"ready": self.ready, "delayed": self.delayed, "dead": self.dead}


# RabbitMQ's reply codes for a queue that does not exist, and for a redeclare with other
# arguments (a classic queue declared as quorum, say).
NOT_FOUND = 404
PRECONDITION_FAILED = 406
# Persistent, like every message Dramatiq publishes.
PERSISTENT = pika.BasicProperties(delivery_mode=2)


class _QuietNotFound(logging.Filter):
    """pika logs every closed channel as a warning; a 404 on a passive declare is expected."""

    def filter(self, record: logging.LogRecord) -> bool:
        return f"({NOT_FOUND})" not in record.getMessage()


logging.getLogger("pika.channel").addFilter(_QuietNotFound())
logger = logging.getLogger("taskpipes")


# Heartbeats keep an idle publisher connection alive through NAT and broker timeouts; the
# blocked timeout turns a publish during a RabbitMQ memory/disk alarm into an error, not a hang.
CONNECTION_PARAMS = {"heartbeat": "30", "blocked_connection_timeout": "60"}
# Returns a quorum queue tolerates beyond the crashes CrashGuard allows before the broker
# dead-letters on its own. RabbitMQ 3.10 counts every return, and a worker that stops
# gracefully (a deploy, a scale-down) returns the messages it had prefetched.
RETURN_ALLOWANCE = 5
# What `max_priority` gives on quorum queues. RabbitMQ refuses `x-max-priority` on them
# (406 PRECONDITION_FAILED, checked on 3.10). From 4.0 every quorum queue has exactly two
# priorities without any argument: a `broker_priority` above 4 is high, 0 to 4 (or none)
# normal, and a consumer gets about two high for one normal, so normal ones are not
# starved (rabbitmq.com/blog/2024/08/28/quorum-queues-in-4.0). Before 4.0, none.
QUORUM_PRIORITIES = (
    "RabbitMQ 4.0+ delivers broker_priority 5 and above as one high priority, about two "
    "for every normal one; older versions ignore priorities on quorum queues"
)
# A scheduler's tick send waits this long before its second attempt while RabbitMQ is
# away, doubling up to the second figure: one log line every few seconds of an outage.
SCHEDULER_PAUSE_S = (1.0, 10.0)


def broker_urls(url: str) -> list[str]:
    """The nodes a `;`-separated BROKER_URL lists, each with our connection parameters."""
    return [with_connection_params(part.strip()) for part in url.split(";")]


def with_connection_params(url: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    for key, value in CONNECTION_PARAMS.items():
        query.setdefault(key, value)
    return urlunsplit(parts._replace(query=urlencode(query)))


def broker_hosts(url: str) -> str:
    """Where the broker is looked for, `host:port, ...`: never the credentials."""
    nodes = [urlsplit(part) for part in broker_urls(url)] if url else []
    return ", ".join(f"{node.hostname}:{node.port or 5672}" for node in nodes)


def connect(broker_url: str) -> pika.BlockingConnection:
    """A connection to the first node of `broker_url` that answers."""
    return pika.BlockingConnection([pika.URLParameters(u) for u in broker_urls(broker_url)])


def queue_arguments(
    queue: str, queue_type: str, max_crashes: int, max_priority: int | None = None
) -> dict[str, Any]:
    """The arguments `queue` (`Q`, `Q.DQ` or `Q.XQ`) is declared with.

    Classic queues get exactly Dramatiq's own, `x-max-priority` on `Q` and `Q.DQ` included
    when the broker has a `max_priority`. Quorum queues never get it: RabbitMQ refuses the
    argument on them (see QUORUM_PRIORITIES). Quorum queues dead-letter at least once (the
    default, at most once, can drop a dead letter the target cannot take), and `Q` gets a
    delivery limit so the broker buries a message that keeps killing its worker even when
    CrashGuard cannot. `Q.DQ` has none: its messages are held, never processed, through every
    worker restart of their delay. `Q.XQ` has none: reading dead letters returns them.
    """
    if queue.endswith(".XQ"):
        arguments: dict[str, Any] = {"x-message-ttl": DEAD_MESSAGE_TTL}
    else:
        canonical = queue.removesuffix(".DQ")
        arguments = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": xq_name(canonical)}
    if queue_type == "classic":
        if max_priority and not queue.endswith(".XQ"):
            arguments["x-max-priority"] = max_priority
        return arguments
    arguments["x-queue-type"] = "quorum"
    if not queue.endswith(".XQ"):
        arguments |= {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
    if not queue.endswith((".XQ", ".DQ")):
        arguments["x-delivery-limit"] = max_crashes + RETURN_ALLOWANCE
    return arguments


class TypedQueuesBroker(RabbitmqBroker):
    """Dramatiq's RabbitMQ broker declaring its queues as `queue_type` (classic or quorum).

    `max_priority` works as in Dramatiq on classic queues: a message's `broker_priority`
    (0 to max_priority, higher first) orders delivery. On quorum queues see
    QUORUM_PRIORITIES; the broker says so when it is built.
    """

    def __init__(self, *, queue_type: str, max_crashes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.queue_type = queue_type
        self.max_crashes = max_crashes
        if queue_type == "quorum" and self.max_priority:
            logger.warning(
                "max_priority=%d on quorum queues: %s", self.max_priority, QUORUM_PRIORITIES
            )

    def enqueue(self, message: dramatiq.Message, *, delay: int | None = None) -> dramatiq.Message:
        if not from_scheduler(message):
            return super().enqueue(message, delay=delay)
        return self._enqueue_until_sent(message, delay)

    def _enqueue_until_sent(self, message: dramatiq.Message, delay: int | None) -> dramatiq.Message:
        """periodiq exits when a send fails, and a supervisor restarts it in a tight loop
        for as long as RabbitMQ is away. Wait for the broker instead: the ticks that fall
        due meanwhile are not sent, and the catch-up pass accounts for them afterwards."""
        pause, attempt = SCHEDULER_PAUSE_S[0], 1
        while True:
            try:
                return super().enqueue(message, delay=delay)
            except ConnectionClosed as exc:
                # The error's class only: pika's text may carry the connection parameters.
                logger.warning(
                    "RabbitMQ unreachable (%s) sending %s for %s; attempt %d failed, next in %g s",
                    type(exc.message).__name__,
                    message.actor_name,
                    message.options["scheduled_at"],
                    attempt,
                    pause,
                )
            time.sleep(pause)
            pause, attempt = min(2 * pause, SCHEDULER_PAUSE_S[1]), attempt + 1

    def _declare(self, queue: str) -> Any:
        arguments = queue_arguments(queue, self.queue_type, self.max_crashes, self.max_priority)
        try:
            return self.channel.queue_declare(queue=queue, durable=True, arguments=arguments)
        except ChannelClosedByBroker as exc:
            if exc.reply_code == PRECONDITION_FAILED:
                logger.error("%s", type_mismatch(queue, self.queue_type, exc.reply_text))
            raise

    def _declare_queue(self, queue_name: str) -> Any:
        return self._declare(queue_name)

    def _declare_dq_queue(self, queue_name: str) -> Any:
        return self._declare(dq_name(queue_name))

    def _declare_xq_queue(self, queue_name: str) -> Any:
        return self._declare(xq_name(queue_name))


def from_scheduler(message: dramatiq.Message) -> bool:
    """A tick as periodiq sends it: `scheduled_at` in its options, and not a retry."""
    return "scheduled_at" in message.options and not message.options.get("retries")


def type_mismatch(queue: str, queue_type: str, reply: str) -> str:
    """What to do when `queue` exists with other arguments than the configured type's."""
    # "PRECONDITION_FAILED - inequivalent arg 'x-overflow' for queue 'q' in vhost ..."
    detail = reply.removeprefix("PRECONDITION_FAILED - ").split(" for queue")[0]
    if "x-max-priority" in detail:
        # Fixed at declaration; no policy or redeclare can change it.
        fix = "a queue's max priority is fixed when it is made: give the broker the queue's own"
        fix += " max_priority, or drain and delete the queue"
    elif queue_type == "quorum":
        fix = "if it is classic, run `taskpipes rabbit migrate-queues` first"
    else:
        fix = "if it is quorum, set TASKPIPES_QUEUE_TYPE=quorum"
    return (
        f"queue {queue} exists with other arguments than TASKPIPES_QUEUE_TYPE={queue_type} "
        f"declares ({detail}): {fix}"
    )


@contextmanager
def channel(connection: pika.BlockingConnection) -> Iterator[BlockingChannel]:
    """A channel of its own, closed at the end: a failed operation closes only it."""
    opened = connection.channel()
    try:
        yield opened
    finally:
        if opened.is_open:
            opened.close()


def _passive(connection: pika.BlockingConnection, queue: str) -> Any:
    """The declare-ok of `queue` (its counts), or None when it does not exist."""
    try:
        with channel(connection) as passive:
            return passive.queue_declare(queue, passive=True).method
    except ChannelClosedByBroker as exc:
        if exc.reply_code == NOT_FOUND:
            return None
        raise


def exists(connection: pika.BlockingConnection, queue: str) -> bool:
    return _passive(connection, queue) is not None


def _counts(connection: pika.BlockingConnection, queue: str) -> tuple[int, int]:
    """(messages ready, consumers) of `queue`; zeros when it does not exist."""
    method = _passive(connection, queue)
    return (method.message_count, method.consumer_count) if method else (0, 0)


def message_count(connection: pika.BlockingConnection, queue: str) -> int:
    """Messages ready in `queue`; 0 when it does not exist."""
    return _counts(connection, queue)[0]


def consumers_of(connection: pika.BlockingConnection, queue: str) -> int:
    """Workers consuming `queue` now; 0 when it does not exist."""
    return _counts(connection, queue)[1]


def consumer_count(broker_url: str, queue: str) -> int:
    with connect(broker_url) as connection:
        return consumers_of(connection, queue)


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
