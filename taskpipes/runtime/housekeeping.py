"""Housekeeping actors: periodic upkeep that is not a pipeline (no run rows), on "default".

`observe_queues` exports every queue's depth as `taskpipes_queue_messages{queue,state}`
once a minute; `observe_pauses` each pipeline's pause as
`taskpipes_pipeline_paused_since_timestamp_seconds{pipeline}` (read from the database). On RabbitMQ it counts with passive declares; with the in-process broker
(BROKER_URL unset) it counts the StubBroker's own queues, so the gauge exists there too.
"""

from __future__ import annotations

import logging

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import dq_name
from pika.exceptions import AMQPError

from taskpipes.declare.pipeline import Retries
from taskpipes.declare.registry import registry
from taskpipes.declare.schedule import EVERY_MINUTE, periodic_option
from taskpipes.declare.settings import get_settings
from taskpipes.observe import metrics
from taskpipes.observe.report import QueueDepth
from taskpipes.rabbitmq import queues as rabbit
from taskpipes.runtime.wiring import actor_options, make_actor
from taskpipes.store.controls import pauses
from taskpipes.store.database import begin

logger = logging.getLogger("taskpipes")

QUEUE = "default"
# A reading is replaced by the next one a minute later, so a failed one is not retried
# (and never dead-letters: broker errors are logged instead). 30 s is far below RabbitMQ's
# 30-minute consumer_timeout and leaves the next minute's reading room to start.
RETRIES = Retries(max=0, min_backoff_ms=1_000, max_backoff_ms=1_000, time_limit_ms=30_000)


def register(broker: dramatiq.Broker) -> None:
    options = actor_options(QUEUE, RETRIES) | {"periodic": periodic_option(EVERY_MINUTE)}
    make_actor(broker, observe_queues, "observe_queues", options)
    make_actor(broker, observe_pauses, "observe_pauses", options)


def observe_queues() -> None:
    broker = dramatiq.get_broker()
    try:
        depths = current_depths(broker)
    except AMQPError as exc:
        logger.warning("queue depths unknown: RabbitMQ did not answer (%s)", type(exc).__name__)
        return
    for queue, depth in depths.items():
        for state, count in depth.by_state().items():
            metrics.queue_depth(queue, state, count)


def observe_pauses() -> None:
    """Export when each declared pipeline was paused, 0 for one that is not: the
    PipelinePausedLong alert, and PipelineStale's exception for a paused pipeline."""
    with begin() as session:
        paused = pauses(session)
    for pipeline in registry.pipelines:
        row = paused.get(pipeline.name)
        since = row.paused_at if row is not None else None
        metrics.paused_since(pipeline.name, 0.0 if since is None else since.timestamp())


def current_depths(broker: dramatiq.Broker) -> dict[str, QueueDepth]:
    if isinstance(broker, StubBroker):
        return stub_depths(broker)
    return rabbit.queue_depths(get_settings().broker_url or "", broker.get_declared_queues())


def stub_depths(broker: StubBroker) -> dict[str, QueueDepth]:
    """Depths of the in-process broker: its queues, delay queues and dead letters."""
    return {
        queue: QueueDepth(
            ready=broker.queues[queue].qsize(),
            delayed=broker.queues[dq_name(queue)].qsize(),
            dead=len(broker.dead_letters_by_queue[queue]),
        )
        for queue in sorted(broker.get_declared_queues())
        if queue not in broker.delay_queues
    }
