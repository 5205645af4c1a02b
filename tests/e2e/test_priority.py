"""Message priorities through TypedQueuesBroker: `max_priority` declares classic queues with
Dramatiq's `x-max-priority`, so a higher `broker_priority` is delivered first; quorum
queues, which refuse the argument, are declared without it and the broker says what they
do instead."""

from __future__ import annotations

import logging

import dramatiq
import pytest
from dramatiq.errors import ConnectionClosed

from taskpipes.rabbitmq.queues import QUORUM_PRIORITIES, TypedQueuesBroker, queue_arguments

QUEUE = "priorities"
DEAD_LETTERING = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "priorities.XQ"}
# Milliseconds a test waits for the worker to empty the queue: a bug fails, never hangs.
JOIN_TIMEOUT_MS = 20_000


def broker_for(url: str, queue_type: str, max_priority: int | None) -> TypedQueuesBroker:
    return TypedQueuesBroker(
        queue_type=queue_type,
        max_crashes=3,
        url=url,
        confirm_delivery=True,
        max_priority=max_priority,
        middleware=[],
    )


def test_classic_queues_get_x_max_priority_on_q_and_its_delay_queue_as_in_dramatiq() -> None:
    priority = {"x-max-priority": 5}
    assert queue_arguments("priorities", "classic", 3, 5) == {**DEAD_LETTERING, **priority}
    assert queue_arguments("priorities.DQ", "classic", 3, 5) == {**DEAD_LETTERING, **priority}
    assert "x-max-priority" not in queue_arguments("priorities.XQ", "classic", 3, 5)
    assert "x-max-priority" not in queue_arguments("priorities", "classic", 3)


def test_quorum_queues_never_get_x_max_priority() -> None:
    for queue in ("priorities", "priorities.DQ", "priorities.XQ"):
        assert "x-max-priority" not in queue_arguments(queue, "quorum", 3, 5)


@pytest.mark.parametrize(("max_priority", "expected"), [(5, "high first"), (None, "in order")])
def test_a_higher_priority_message_is_delivered_first_with_max_priority(
    rabbitmq: str, max_priority: int | None, expected: str
) -> None:
    # Given three normal messages queued before one urgent one, and no worker yet
    broker = broker_for(rabbitmq, "classic", max_priority)
    done: list[str] = []

    def note(name: str) -> None:
        done.append(name)

    actor = dramatiq.actor(note, broker=broker, actor_name="note", queue_name=QUEUE)
    try:
        for name in ("low 1", "low 2", "low 3"):
            actor.send_with_options(args=(name,), broker_priority=0)
        actor.send_with_options(args=("high",), broker_priority=5)

        # When one worker thread takes them
        worker = dramatiq.Worker(broker, worker_threads=1)
        worker.start()
        try:
            broker.join(QUEUE, timeout=JOIN_TIMEOUT_MS)
            worker.join()
        finally:
            worker.stop()
    finally:
        broker.close()

    # Then with max_priority the urgent one overtakes the queue; without it, none does
    if expected == "high first":
        assert done == ["high", "low 1", "low 2", "low 3"]
    else:
        assert done == ["low 1", "low 2", "low 3", "high"]


def test_quorum_queues_are_declared_without_it_and_the_broker_says_what_priorities_do(
    rabbitmq: str, caplog: pytest.LogCaptureFixture
) -> None:
    # When a quorum broker is given max_priority (RabbitMQ answers x-max-priority on a
    # quorum queue with 406, which would close the channel)
    with caplog.at_level(logging.WARNING, logger="taskpipes"):
        broker = broker_for(rabbitmq, "quorum", 5)
    try:
        broker.declare_queue(QUEUE, ensure=True)
    finally:
        broker.close()

    # Then the queues exist, and the log says what priorities do on them
    assert f"max_priority=5 on quorum queues: {QUORUM_PRIORITIES}" in caplog.text


def test_a_classic_queue_made_without_priorities_names_the_fix(
    rabbitmq: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a classic queue declared before max_priority was set
    plain = broker_for(rabbitmq, "classic", None)
    plain.declare_queue(QUEUE, ensure=True)
    plain.close()

    # When a broker with max_priority declares it
    broker = broker_for(rabbitmq, "classic", 5)
    try:
        with pytest.raises(ConnectionClosed):
            broker.declare_queue(QUEUE, ensure=True)
    finally:
        broker.close()

    # Then the log says that its priorities are fixed and what to do
    assert "(inequivalent arg 'x-max-priority'): a queue's max priority is fixed" in caplog.text
