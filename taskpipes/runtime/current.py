"""The broker of this process: the one `taskpipes.start()` made Dramatiq's global broker.

It is the kit's only global beside the configuration (`taskpipes.declare.configuration`), as
Dramatiq's broker is Dramatiq's.
"""

from __future__ import annotations

import dramatiq

from taskpipes.declare.pipeline import Pipeline


class NotRegistered(RuntimeError):
    """A message was to be sent before the application registered its actors."""


def current_broker() -> dramatiq.Broker:
    """The broker `taskpipes.start()` made Dramatiq's global one: the only broker there is.
    (`dramatiq.get_broker()` would quietly build a RabbitMQ broker of its own instead.)"""
    broker = dramatiq.broker.global_broker
    if broker is None:
        raise NotRegistered(
            "no broker: the application registers its actors first (`import actors`)"
        )
    return broker


def tick_actor(pipeline: Pipeline) -> dramatiq.Actor:
    return current_broker().get_actor(pipeline.actor_name("tick"))
