"""`taskpipes rabbit migrate-queues`: turn a deployment's classic queues into quorum queues.

RabbitMQ cannot change the type of a queue that exists (a redeclare is refused with
PRECONDITION_FAILED), so each queue's messages go through a holding queue:

    Q (classic) ──move──► Q.migrating (quorum) ──delete Q, declare Q quorum──► ──move──► Q

Every move publishes a message with confirms, then acks its original: a crash never loses
one, and at worst leaves one copy in both queues, which the stages' idempotence absorbs.
Each step looks at what exists before acting, so running again after an interruption
finishes the job, and running it on migrated queues changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pika
from dramatiq.common import dq_name, xq_name
from pika.exceptions import ChannelClosedByBroker

from taskpipes.rabbitmq import queues as rabbit

# Where a queue's messages wait while the queue is declared again as quorum.
HOLDING_SUFFIX = ".migrating"


class MigrationError(RuntimeError):
    """The migration cannot go on safely; the message says why and what to do."""


@dataclass(frozen=True)
class QueueMigration:
    """What happened to one queue: moved out to the holding queue and back into the new one."""

    queue: str
    was_classic: bool
    moved_out: int
    moved_back: int

    def line(self) -> str:
        if not self.was_classic and not self.moved_back:
            return f"{self.queue}: already quorum"
        return (
            f"{self.queue}: now quorum, {self.moved_back} message(s) moved "
            f"({self.moved_out} out of the classic queue in this run)"
        )


def migrate(broker_url: str, queues: Iterable[str], max_crashes: int) -> Iterator[QueueMigration]:
    """Migrate each canonical queue with its `.DQ` and `.XQ`, one queue at a time."""
    with rabbit.connect(broker_url) as connection:
        for canonical in sorted(queues):
            for queue in (canonical, dq_name(canonical), xq_name(canonical)):
                yield migrate_queue(connection, queue, max_crashes)


def migrate_queue(
    connection: pika.BlockingConnection, queue: str, max_crashes: int
) -> QueueMigration:
    holding = queue + HOLDING_SUFFIX
    was_classic = _is_classic(connection, queue, max_crashes)
    moved_out = 0
    if was_classic:
        _refuse_if_consumed(connection, queue)
        _declare(connection, holding, {"x-queue-type": "quorum"})
        moved_out = _move(connection, queue, holding)
        _delete_empty(connection, queue)
        _declare(connection, queue, rabbit.queue_arguments(queue, "quorum", max_crashes))
    moved_back = 0
    if rabbit.exists(connection, holding):
        moved_back = _move(connection, holding, queue)
        # Quorum queues refuse `if_empty` deletes; nothing but this migration publishes to
        # the holding queue, so empty now means empty for good.
        if rabbit.message_count(connection, holding) == 0:
            with rabbit.channel(connection) as channel:
                channel.queue_delete(holding)
    return QueueMigration(queue, was_classic, moved_out, moved_back)


def _is_classic(connection: pika.BlockingConnection, queue: str, max_crashes: int) -> bool:
    """True for a classic queue as Dramatiq declares it; False once it is quorum (a queue
    that does not exist is created quorum)."""
    if rabbit.exists(connection, queue) and _redeclares(
        connection, queue, rabbit.queue_arguments(queue, "classic", max_crashes)
    ):
        return True
    wanted = rabbit.queue_arguments(queue, "quorum", max_crashes)
    if not _redeclares(connection, queue, wanted):
        raise MigrationError(
            f"{queue} is neither a classic queue as Dramatiq declares it nor a quorum queue "
            f"with arguments {wanted}: compare them with `rabbitmqctl list_queues name arguments`"
        )
    return False


def _redeclares(connection: pika.BlockingConnection, queue: str, arguments: dict[str, Any]) -> bool:
    try:
        _declare(connection, queue, arguments)
        return True
    except ChannelClosedByBroker as exc:
        if exc.reply_code == rabbit.PRECONDITION_FAILED:
            return False
        raise


def _refuse_if_consumed(connection: pika.BlockingConnection, queue: str) -> None:
    # A consumer holds messages this migration cannot see, and an old worker would declare
    # the queue classic again the moment it is deleted.
    consumers = rabbit.consumers_of(connection, queue)
    if consumers:
        raise MigrationError(
            f"{queue} has {consumers} consumer(s): stop the workers and schedulers first, "
            "then start them with TASKPIPES_QUEUE_TYPE=quorum"
        )


def _declare(connection: pika.BlockingConnection, queue: str, arguments: dict[str, Any]) -> None:
    with rabbit.channel(connection) as channel:
        channel.queue_declare(queue, durable=True, arguments=arguments)


def _move(connection: pika.BlockingConnection, source: str, destination: str) -> int:
    """Move every message of `source` to `destination`: publish, confirm, then ack."""
    moved = 0
    with rabbit.channel(connection) as channel:
        channel.confirm_delivery()
        while True:
            method, properties, body = channel.basic_get(source, auto_ack=False)
            if method is None:
                return moved
            # pika raises on a nack or a return, so the original is acked only once the
            # copy is safe in the destination.
            channel.basic_publish("", destination, body, properties, mandatory=True)
            channel.basic_ack(method.delivery_tag)
            moved += 1


def _delete_empty(connection: pika.BlockingConnection, queue: str) -> None:
    try:
        with rabbit.channel(connection) as channel:
            channel.queue_delete(queue, if_empty=True)
    except ChannelClosedByBroker as exc:
        if exc.reply_code != rabbit.PRECONDITION_FAILED:
            raise
        raise MigrationError(
            f"{queue} received new messages while it was being migrated: stop whatever "
            "publishes to it and run `taskpipes rabbit migrate-queues` again"
        ) from None
