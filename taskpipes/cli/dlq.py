"""`taskpipes dlq`: list, replay and purge the dead letters Dramatiq leaves in `Q.XQ`.

Messages are taken from the dead-letter queue without an ack and acked only once their
fate is settled (republished and confirmed, or purged); everything else goes back to the
queue when the channel closes. A replay reopens the message's failed run first, so the
stage can finish it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from typing import Any

import dramatiq
from dramatiq.errors import DecodeError
from sqlalchemy.exc import SQLAlchemyError

from taskpipes.rabbitmq import queues as rabbit
from taskpipes.rabbitmq.deadletters import DeadLetter, describe, replay_message
from taskpipes.rabbitmq.queues import HeldMessage
from taskpipes.runtime.current import current_broker
from taskpipes.store import runs
from taskpipes.store.database import begin

logger = logging.getLogger("taskpipes")

# A decoded Dramatiq message; None when the body is not one.
Decoded = dict[str, Any] | None
# What replay and purge do with each chosen message; returns what to report.
Action = Callable[[HeldMessage, dict[str, Any]], DeadLetter]


def declared_queues() -> list[str]:
    """Every queue the registered actors use, each with its `.XQ`."""
    return sorted(current_broker().get_declared_queues())


def _decode(body: bytes) -> Decoded:
    try:
        return dramatiq.Message.decode(body).asdict()
    except DecodeError:
        return None


def _undecodable(queue: str) -> DeadLetter:
    return DeadLetter(queue, "", "(not a Dramatiq message)", None, None, 0, None)


def _each_dead(broker_url: str, queues: list[str]) -> Iterator[tuple[str, HeldMessage, Decoded]]:
    """Every dead message, held (not acked) until the next queue is read."""
    with rabbit.connect(broker_url) as connection:
        for queue in queues:
            with rabbit.held_dead_letters(connection, queue) as held:
                for item in held:
                    yield queue, item, _decode(item.body)


def list_dead(broker_url: str, queues: list[str]) -> list[DeadLetter]:
    """Every dead message, read without removing any."""
    letters = [
        _undecodable(queue) if message is None else describe(message)
        for queue, _item, message in _each_dead(broker_url, queues)
    ]
    return with_run_ticks(letters)


def with_run_ticks(letters: list[DeadLetter]) -> list[DeadLetter]:
    """Fill in the tick of stage messages from their run row, when the database answers."""
    wanted = {letter.run_id for letter in letters if letter.tick is None and letter.run_id}
    if not wanted:
        return letters
    try:
        with begin() as session:
            found = {run_id: runs.get_run(session, run_id) for run_id in wanted}
            ticks = {run_id: run.tick.isoformat() for run_id, run in found.items() if run}
    except SQLAlchemyError as exc:
        logger.warning("run ticks unknown: the database did not answer (%s)", type(exc).__name__)
        return letters
    return [
        dataclasses.replace(letter, tick=letter.tick or ticks.get(letter.run_id or 0))
        for letter in letters
    ]


def take_dead(
    broker_url: str, queues: list[str], message_id: str | None, action: Action
) -> list[DeadLetter]:
    """Apply `action` to the dead message `message_id`, or to all of them when None."""
    done = [
        action(item, message)
        for _queue, item, message in _each_dead(broker_url, queues)
        if message is not None and message_id in (None, message["message_id"])
    ]
    return with_run_ticks(done)


def replay(item: HeldMessage, message: dict[str, Any]) -> DeadLetter:
    """Reopen the run, republish with retries reset, then drop the dead copy."""
    letter = describe(message)
    if letter.run_id is not None:
        with begin() as session:
            if runs.resume(session, letter.run_id) is not None:
                logger.info("run %s resumed for message %s", letter.run_id, letter.message_id)
    fresh = replay_message(message)
    rabbit.republish(item, fresh["queue_name"], dramatiq.Message(**fresh).encode())
    item.ack()
    return letter


def purge(item: HeldMessage, message: dict[str, Any]) -> DeadLetter:
    item.ack()
    return describe(message)
